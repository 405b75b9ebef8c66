// The TS face of bpf/abi/events.h. One table of field offsets; abi.test.ts checks
// it against the BTF of the compiled object so C and TS cannot drift.

export const ABI_VERSION = 1;

export const Op = {
  connect: 1,
  accept: 2,
  send: 3,
  recv: 4,
  close: 5,
  exchange: 6,
  head: 7,
  responded: 8,
} as const;
export type OpName = keyof typeof Op;

export const OP_NAMES: readonly (OpName | undefined)[] = [
  undefined,
  'connect',
  'accept',
  'send',
  'recv',
  'close',
  'exchange',
  'head',
  'responded',
];

export const Flag = {
  truncated: 1 << 0,
  ignored: 1 << 1,
  sendfile: 1 << 2,
  preexisting: 1 << 3,
  kernelClose: 1 << 4,
  /** stands for calls the kernel folded into an exchange: bytes and times, no payload */
  elided: 1 << 5,
  /** shadow mode: a call the kernel summarised, sent anyway for comparison */
  shadow: 1 << 6,
  /** a summarised call sent again because the kernel stopped summarising the connection */
  replay: 1 << 7,
} as const;

/** osp_event.link bits (bpf/abi/events.h enum osp_link) */
export const LinkNote = {
  /**
   * a request of the process may be in flight that user space was not told of: a client
   * request gets no thread or runtime parent, a server request is no proof for the thread rule
   */
  unsure: 1 << 0,
} as const;

/** struct osp_exchange, the start of an exchange record's payload: field -> [offset, size] */
export const EXCHANGE_LAYOUT = {
  req_end: [0, 8],
  resp_ts: [8, 8],
  resp_bytes: [16, 8],
  req_call_ts: [24, 8],
  req_call_ts_end: [32, 8],
  resp_tid: [40, 4],
  req_head_len: [44, 4],
  resp_head_len: [48, 4],
  status: [52, 2],
  resp_minor: [54, 1],
  xflags: [55, 1],
  resp_rtx: [56, 8],
} as const satisfies Record<string, readonly [number, number]>;
export const EXCHANGE_SIZE = 64;

/** how the kernel handles HTTP/1 (enum hx_mode): raw events, exchange records, or both (tests) */
export const SummarizeMode = { off: 0, on: 1, shadow: 2 } as const;

export const Role = { unknown: 0, client: 1, server: 2 } as const;

/** enum osp_counter, in order */
export const KERNEL_COUNTERS = [
  'ringbuf_dropped',
  'payload_truncated',
  'conn_ignored',
  'conn_tracked',
  'conn_opened',
  'conn_table_full',
  'inflight_full',
  'payload_read_fault',
  'conn_preexisting',
  'conn_kernel_close',
  'events',
  'exchanges',
  'calls_folded',
  'summary_fallbacks',
  'summary_pending_full',
  'tls_connections',
  'tls_ciphertext_calls',
  'tls_plaintext_calls',
  'tls_plaintext_unbound',
  'tls_rebind',
  'h2_lost',
] as const;
export type KernelCounter = (typeof KERNEL_COUNTERS)[number];

/** struct osp_event: field -> [offset, size] */
export const EVENT_LAYOUT = {
  op: [0, 1],
  flags: [1, 1],
  size: [2, 2],
  pid: [4, 4],
  tid: [8, 4],
  fd: [12, 4],
  ts: [16, 8],
  ts_end: [24, 8],
  conn_id: [32, 8],
  bytes: [40, 8],
  cap: [48, 4],
  family: [52, 1],
  role: [53, 1],
  lport: [54, 2],
  rport: [56, 2],
  tls: [58, 1],
  link: [59, 1],
  netns: [60, 4],
  laddr: [64, 16],
  raddr: [80, 16],
  comm: [96, 16],
  rtx: [112, 8],
  lost: [120, 8],
} as const satisfies Record<string, readonly [number, number]>;

export const EVENT_HEADER_SIZE = 128;
export const MAX_CAPTURE = 4096;
export const AF_INET = 2;
export const AF_INET6 = 10;
