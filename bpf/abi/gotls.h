/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * What the Go crypto/tls probes (lib/gotls.h) need to know of one Go executable, written by
 * user space (src/agent/golang/probes.ts) into the go_tls_bins array before it attaches the
 * file's uprobes, whose cookie is the slot index + 1. Offsets come from the binary's DWARF
 * (src/agent/golang/analyze.ts), never from a Go version. Mirrored in
 * src/kernel/abi-gotls.ts (checked against this object's BTF in src/kernel/abi.test.ts).
 */
#ifndef OSPREY_ABI_GOTLS_H
#define OSPREY_ABI_GOTLS_H

#define OSP_GO_TLS_BINS 256

struct osp_go_tls {
	/* link-time address of the *net.TCPConn,net.Conn itab; 0: not checked (PIE, or none) */
	__u64 itab_tcp_conn;
	__u32 tls_conn_conn; /* crypto/tls.Conn.conn: a net.Conn interface value */
	__u32 iface_tab;     /* runtime.iface.tab */
	__u32 iface_data;    /* runtime.iface.data */
	__u32 tcp_conn_conn; /* net.TCPConn.conn (embedded net.conn) */
	__u32 conn_fd;       /* net.conn.fd: *net.netFD */
	__u32 netfd_pfd;     /* net.netFD.pfd: internal/poll.FD */
	__u32 pfd_sysfd;     /* internal/poll.FD.Sysfd: int */
	__u32 g_goid;        /* runtime.g.goid */
};

#endif
