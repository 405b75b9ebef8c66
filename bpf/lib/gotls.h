/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Go crypto/tls: uprobes on (*Conn).Write and (*Conn).Read of a Go executable (register ABI,
 * Go >= 1.17, x86-64), attached per file by src/agent/golang/probes.ts with the binary's
 * go_tls_bins slot (+1) as the cookie:
 *  - osp_go_tls_write, after Write's stack check: RAX = *Conn, RBX = buffer, RCX = length.
 *    The plaintext goes out at once, for the socket fd read from the *Conn.
 *  - osp_go_tls_read, after Read's stack check: RAX = *Conn, RBX = buffer. The buffer and fd
 *    are kept per goroutine (goid from g, in R14): a Read that waits for data parks its
 *    goroutine, which may resume on another thread.
 *  - osp_go_tls_read_ret, on every RET of Read (no uretprobes: they rewrite the return
 *    address on the goroutine stack, and Go moves stacks): RAX = n, the plaintext bytes read.
 * Both probes sit after the stack check, not at the entry: when the stack must grow, the
 * runtime runs the function's entry a second time, and a Write probe there would report its
 * plaintext twice.
 * The fd is the *Conn's: conn (net.Conn) -> data -> net.TCPConn.conn.fd -> pfd.Sysfd, each
 * offset from the binary's DWARF. When the interface's itab is not the *net.TCPConn one
 * (a wrapped or non-TCP connection), no fd is guessed: counted as unbound. The connection's
 * ciphertext at the socket is dropped by lib/tls.h (the first bytes were a TLS record).
 */
#ifndef OSPREY_LIB_GOTLS_H
#define OSPREY_LIB_GOTLS_H

#include "abi/gotls.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OSP_GO_TLS_BINS);
	__type(key, __u32);
	__type(value, struct osp_go_tls);
} go_tls_bins SEC(".maps");

struct go_read_key {
	__u32 tgid;
	__u32 _pad;
	__u64 goid;
};

struct go_read {
	__u64 buf;
	__s32 fd;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_read_key);
	__type(value, struct go_read);
} go_reads SEC(".maps");

static __always_inline const struct osp_go_tls *go_tls_bin(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	if (!cookie || cookie > OSP_GO_TLS_BINS)
		return NULL;
	__u32 slot = cookie - 1;
	return bpf_map_lookup_elem(&go_tls_bins, &slot);
}

/* the socket fd behind a *tls.Conn, or -1 */
static __always_inline int go_tls_fd(const struct osp_go_tls *b, __u64 conn)
{
	__u64 iface = conn + b->tls_conn_conn;
	__u64 tab = 0, data = 0, netfd = 0;
	__s64 fd = -1;
	if (b->itab_tcp_conn) {
		if (bpf_probe_read_user(&tab, sizeof(tab), (void *)(iface + b->iface_tab)) || tab != b->itab_tcp_conn)
			return -1;
	}
	if (bpf_probe_read_user(&data, sizeof(data), (void *)(iface + b->iface_data)) || !data)
		return -1;
	if (bpf_probe_read_user(&netfd, sizeof(netfd), (void *)(data + b->tcp_conn_conn + b->conn_fd)) || !netfd)
		return -1;
	if (bpf_probe_read_user(&fd, sizeof(fd), (void *)(netfd + b->netfd_pfd + b->pfd_sysfd)))
		return -1;
	return fd >= 0 && fd < 0x7fffffff ? (int)fd : -1;
}

static __always_inline int go_read_key_of(const struct osp_go_tls *b, struct pt_regs *ctx, struct go_read_key *k)
{
	k->tgid = bpf_get_current_pid_tgid() >> 32;
	k->_pad = 0;
	k->goid = 0;
	return bpf_probe_read_user(&k->goid, sizeof(k->goid), (void *)(ctx->r14 + b->g_goid));
}

SEC("uprobe")
int osp_go_tls_write(struct pt_regs *ctx)
{
	if (!traced(bpf_get_current_pid_tgid() >> 32))
		return 0;
	const struct osp_go_tls *b = go_tls_bin(ctx);
	long len = (long)ctx->cx;
	if (!b || len <= 0)
		return 0;
	int fd = go_tls_fd(b, ctx->ax);
	if (fd < 0) {
		count(OSP_C_TLS_UNBOUND);
		return 0;
	}
	return plaintext_out(fd, 1, ctx->bx, len, bpf_ktime_get_ns());
}

SEC("uprobe")
int osp_go_tls_read(struct pt_regs *ctx)
{
	if (!traced(bpf_get_current_pid_tgid() >> 32))
		return 0;
	const struct osp_go_tls *b = go_tls_bin(ctx);
	if (!b)
		return 0;
	int fd = go_tls_fd(b, ctx->ax);
	if (fd < 0) {
		count(OSP_C_TLS_UNBOUND);
		return 0;
	}
	struct go_read_key k;
	if (go_read_key_of(b, ctx, &k))
		return 0;
	struct go_read r = { .buf = ctx->bx, .fd = fd };
	if (bpf_map_update_elem(&go_reads, &k, &r, BPF_ANY))
		count(OSP_C_INFLIGHT_FULL);
	return 0;
}

SEC("uprobe")
int osp_go_tls_read_ret(struct pt_regs *ctx)
{
	if (!traced(bpf_get_current_pid_tgid() >> 32))
		return 0;
	const struct osp_go_tls *b = go_tls_bin(ctx);
	if (!b)
		return 0;
	struct go_read_key k;
	if (go_read_key_of(b, ctx, &k))
		return 0;
	struct go_read *r = bpf_map_lookup_elem(&go_reads, &k);
	if (!r)
		return 0;
	struct go_read in = *r;
	bpf_map_delete_elem(&go_reads, &k);
	long n = (long)ctx->ax;
	if (n <= 0)
		return 0;
	/* the time the plaintext was there: a Read's entry may wait long for it */
	return plaintext_out(in.fd, 0, in.buf, n, bpf_ktime_get_ns());
}

#endif
