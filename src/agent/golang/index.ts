// Go crypto/tls plaintext: analysis of Go executables (probe offsets and struct layout per
// binary) and the uprobes that read it (bpf/lib/gotls.h).
export { analyzeGoBinary, goAnalysisCounters, isSupported, GO_TLS_READ, GO_TLS_WRITE } from './analyze.js';
export type { FileKey, GoAnalysis, GoBinaryInfo, GoFunction, GoTlsOffsets, GoUnsupported, UnsupportedReason } from './analyze.js';
export { goTlsFamily, goTlsProbeSpecs, GO_PROGRAMS } from './probes.js';
export type { GoTlsFamily, GoTlsKernel } from './probes.js';
