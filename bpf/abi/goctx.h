/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * What the Go runtime-context code (lib/goctx.h, lib/goprobes.h) needs to know of one Go
 * executable and of one Go process, written by user space (src/agent/golang/runtime-probes.ts).
 * Offsets and addresses come from the binary's symbols and DWARF
 * (src/agent/golang/runtime-analyze.ts), never from a Go version. Mirrored in
 * src/kernel/abi-goctx.ts (checked against this object's BTF in src/kernel/abi.test.ts).
 */
#ifndef OSPREY_ABI_GOCTX_H
#define OSPREY_ABI_GOCTX_H

#define OSP_GO_CTX_BINS 256

/* per executable, in the go_ctx_bins slot whose index + 1 is its uprobes' cookie */
struct osp_go_ctx {
	unsigned long long itab_tcp_conn;   /* link-time address of the *net.TCPConn,net.Conn itab */
	unsigned long long itab_tls_conn;   /* of the *crypto/tls.Conn,net.Conn itab; 0: none */
	/* [start, end) of the functions whose `go` statements start goroutines of note */
	unsigned long long dial_conn_lo;    /* net/http.(*Transport).dialConn: a connection's readLoop/writeLoop */
	unsigned long long dial_conn_hi;
	unsigned long long bg_read_lo;      /* net/http.(*connReader).startBackgroundRead */
	unsigned long long bg_read_hi;
	unsigned int g_goid;          /* runtime.g.goid */
	unsigned int pconn_conn;      /* net/http.persistConn.conn: a net.Conn interface value */
	unsigned int iface_tab;       /* runtime.iface.tab */
	unsigned int iface_data;      /* runtime.iface.data */
	unsigned int tls_conn_conn;   /* crypto/tls.Conn.conn (net.Conn) */
	unsigned int tcp_conn_conn;   /* net.TCPConn.conn (embedded net.conn) */
	unsigned int conn_fd;         /* net.conn.fd: *net.netFD */
	unsigned int netfd_pfd;       /* net.netFD.pfd: internal/poll.FD */
	unsigned int pfd_sysfd;       /* internal/poll.FD.Sysfd: int */
	unsigned int _pad;
};

/* per process (go_procs, by tgid): what the syscall path needs to read the running goroutine */
struct osp_go_proc {
	int g_tls;  /* offset of the current g pointer from the thread's FS base (-8 without cgo TLS) */
	unsigned int g_goid; /* runtime.g.goid */
};

/* go_ctx_counters slots */
enum osp_go_counter {
	OSP_GC_HANDOFFS = 0,      /* (*persistConn).roundTrip calls bound to their connection */
	OSP_GC_HANDOFF_UNBOUND = 1, /* roundTrip calls whose connection was not found (not TCP, untracked) */
	OSP_GC_SPAWNS = 2,        /* goroutines whose parent was recorded */
	OSP_GC_POOL_SPAWNS = 3,   /* a connection's readLoop/writeLoop: no parent recorded */
	OSP_GC_ALIASES = 4,       /* connection background readers, attributed to their serving goroutine */
	OSP_GC_UNPAIRED = 5,      /* newproc1 returns without their entry */
	OSP_GC_READ_FAULT = 6,    /* a runtime structure could not be read */
	OSP_GC_EXITS = 7,         /* goroutines with a recorded parent seen ending (runtime.goexit1) */
	OSP_GC__COUNT = 8,
};

#endif
