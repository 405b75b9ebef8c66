export { Capture, type CaptureOptions, type CaptureCounters, type ProgramState, type UprobeTarget } from './capture.js';
export { decodeBatch, formatAddr, formatIp, type KernelEvent, type DecodeStats, type ExchangeFields } from './decode.js';
export { elfSymbols, type ElfSymbols, type ElfFunction } from './elf.js';
export { KernelError, type KernelErrorCode } from './errors.js';
export { preflight, type PreflightReport } from './preflight.js';
export { Flag, Role, Op, SummarizeMode, EXCHANGE_LAYOUT, EXCHANGE_SIZE, KERNEL_COUNTERS, EVENT_HEADER_SIZE, EVENT_LAYOUT, type OpName, type KernelCounter } from './abi.js';
export { GO_TLS_BINS, GO_TLS_LAYOUT, GO_TLS_MAP, GO_TLS_SIZE } from './abi-gotls.js';
export { GO_CTX_BINS, GO_CTX_LAYOUT, GO_CTX_MAP, GO_CTX_SIZE, GO_PROCS_MAP, GO_PROC_LAYOUT, GO_PROC_SIZE, GO_PARENTS_MAP, GO_GKEY_SIZE, GO_PARENT_SIZE, GO_CTX_COUNTERS, GO_CTX_COUNTERS_MAP, type GoCtxCounter } from './abi-goctx.js';
export { NODE_BINS, NODE_BINS_MAP, NODE_BIN_LAYOUT, NODE_BIN_SIZE } from './abi-nodectx.js';
