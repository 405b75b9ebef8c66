// Go crypto/tls plaintext: analysis of Go executables (probe offsets and struct layout per
// binary) and the uprobes that read it (bpf/lib/gotls.h).
export { analyzeGoBinary, goAnalysisCounters, isSupported, GO_TLS_READ, GO_TLS_WRITE } from './analyze.js';
export type { FileKey, GoAnalysis, GoBinaryInfo, GoFunction, GoTlsOffsets, GoUnsupported, UnsupportedReason } from './analyze.js';
export { goTlsFamily, goTlsProbeSpecs, GO_PROGRAMS } from './probes.js';
export type { GoTlsFamily, GoTlsKernel } from './probes.js';
export { analyzeGoRuntime, isGoRuntimeSupported, GO_NEWPROC1, GO_ROUND_TRIP } from './runtime-analyze.js';
export type { GoRuntimeAnalysis, GoRuntimeInfo, GoRuntimeUnsupported } from './runtime-analyze.js';
export { goRuntimeFamily, goRuntimeProbeSpecs, GO_CTX_PROGRAMS } from './runtime-probes.js';
export type { GoRuntimeFamily, GoRuntimeKernel, GoRuntimeCounters } from './runtime-probes.js';
