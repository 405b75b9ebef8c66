// Analysis of Go executables for crypto/tls uprobes: probe offsets and struct layout per binary.
export { analyzeGoBinary, goAnalysisCounters, isSupported, GO_TLS_READ, GO_TLS_WRITE } from './analyze.js';
export type { FileKey, GoAnalysis, GoBinaryInfo, GoFunction, GoTlsOffsets, GoUnsupported, UnsupportedReason } from './analyze.js';
