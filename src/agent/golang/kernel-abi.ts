// The TS face of bpf/abi/gotls.h: one go_tls_bins slot per attached Go executable (checked
// against the object's BTF in kernel-abi.test.ts).
import type { GoBinaryInfo } from './analyze.js';

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

/** the map value for a binary; the itab is checked only where its address is fixed (not PIE) */
export function encodeGoTls(info: GoBinaryInfo): Buffer {
  const b = Buffer.alloc(GO_TLS_SIZE);
  const o = info.offsets;
  const L = GO_TLS_LAYOUT;
  b.writeBigUInt64LE(BigInt(!info.pie && info.itabTcpConn ? info.itabTcpConn : 0), L.itab_tcp_conn[0]);
  b.writeUInt32LE(o.tlsConnConn, L.tls_conn_conn[0]);
  b.writeUInt32LE(o.ifaceTab, L.iface_tab[0]);
  b.writeUInt32LE(o.ifaceData, L.iface_data[0]);
  b.writeUInt32LE(o.tcpConnConn, L.tcp_conn_conn[0]);
  b.writeUInt32LE(o.connFd, L.conn_fd[0]);
  b.writeUInt32LE(o.netFDPfd, L.netfd_pfd[0]);
  b.writeUInt32LE(o.pollFDSysfd, L.pfd_sysfd[0]);
  b.writeUInt32LE(o.gGoid, L.g_goid[0]);
  return b;
}
