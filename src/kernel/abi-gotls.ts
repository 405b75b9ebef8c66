// The TS face of bpf/abi/gotls.h: one go_tls_bins slot per attached Go executable (checked
// against the object's BTF in abi.test.ts). Written by src/agent/golang/probes.ts.

export const GO_TLS_BINS = 256;
export const GO_TLS_MAP = 'go_tls_bins';

/** struct osp_go_tls: field -> [offset, size] */
export const GO_TLS_LAYOUT = {
  itab_tcp_conn: [0, 8],
  tls_conn_conn: [8, 4],
  iface_tab: [12, 4],
  iface_data: [16, 4],
  tcp_conn_conn: [20, 4],
  conn_fd: [24, 4],
  netfd_pfd: [28, 4],
  pfd_sysfd: [32, 4],
  g_goid: [36, 4],
} as const;
export const GO_TLS_SIZE = 40;
