// The TS face of bpf/abi/goctx.h (checked against the object's BTF in abi.test.ts): one
// go_ctx_bins slot per Go executable with runtime-context probes, one go_procs entry per Go
// process whose goroutine is read at its calls. Written by src/agent/golang/runtime-probes.ts.

export const GO_CTX_BINS = 256;
export const GO_CTX_MAP = 'go_ctx_bins';
export const GO_PROCS_MAP = 'go_procs';
export const GO_PARENTS_MAP = 'go_parents';
export const GO_CTX_COUNTERS_MAP = 'go_ctx_counters';

/** struct osp_go_ctx: field -> [offset, size] */
export const GO_CTX_LAYOUT = {
  itab_tcp_conn: [0, 8],
  itab_tls_conn: [8, 8],
  dial_conn_lo: [16, 8],
  dial_conn_hi: [24, 8],
  bg_read_lo: [32, 8],
  bg_read_hi: [40, 8],
  g_goid: [48, 4],
  pconn_conn: [52, 4],
  iface_tab: [56, 4],
  iface_data: [60, 4],
  tls_conn_conn: [64, 4],
  tcp_conn_conn: [68, 4],
  conn_fd: [72, 4],
  netfd_pfd: [76, 4],
  pfd_sysfd: [80, 4],
  _pad: [84, 4],
} as const;
export const GO_CTX_SIZE = 88;

/** struct osp_go_proc */
export const GO_PROC_LAYOUT = { g_tls: [0, 4], g_goid: [4, 4] } as const;
export const GO_PROC_SIZE = 8;

/** go_parents: key struct go_gkey {tgid, _pad, goid}, value struct go_parent {parent, ktime, exit_ktime} */
export const GO_GKEY_SIZE = 16;
export const GO_PARENT_SIZE = 24;

/** enum osp_go_counter, in slot order */
export const GO_CTX_COUNTERS = ['handoffs', 'handoff_unbound', 'spawns', 'pool_spawns', 'aliases', 'unpaired', 'read_fault', 'exits'] as const;
export type GoCtxCounter = (typeof GO_CTX_COUNTERS)[number];
