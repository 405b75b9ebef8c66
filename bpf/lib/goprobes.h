/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Uprobes on the Go runtime and net/http for the runtime context (lib/goctx.h), attached per
 * executable by src/agent/golang/runtime-probes.ts with the binary's go_ctx_bins slot (+1) as
 * the cookie. Register ABI (Go >= 1.17, x86-64); every probe sits after its function's
 * stack check (see lib/gotls.h for why), and returns are probed at their RET instructions
 * (no uretprobes on Go: they rewrite return addresses on stacks the runtime moves).
 *  - osp_go_round_trip: net/http.(*persistConn).roundTrip(pc = RAX), on the caller's
 *    goroutine (R14 = g): pc.conn -> socket fd -> the tracked connection; go_conn_owner[its id]
 *    = the caller (see lib/goctx.h).
 *  - osp_go_newproc / osp_go_newproc_ret: runtime.newproc1(fn = RAX, callergp = RBX,
 *    callerpc = RCX) -> the new g in RAX. It runs on the system stack (R14 is g0 there, hence
 *    callergp) of one thread without preemption, so entry and return pair by thread. The
 *    child -> parent relation goes into go_parents, read by user space for goroutines that
 *    call out on behalf of a request goroutine (fan-out). Goroutines started by
 *    (*Transport).dialConn (a connection's readLoop / writeLoop) serve every later request
 *    of their connection, not the one that dialled it: no parent is recorded for them. A
 *    server connection's background reader gets an alias (go_alias) to its serving goroutine.
 *  - osp_go_exit: runtime.goexit1(), on the exiting goroutine (R14 = g): every goroutine
 *    that ends normally or by runtime.Goexit passes here (runtime.goexit, the return address
 *    at the base of every goroutine's stack, calls it) before goexit0 frees its g for reuse.
 *    A goroutine with a recorded parent gets its exit time (go_parent.exit_ktime): the linker
 *    trusts a started goroutine's ancestry only when it (and each goroutine between it and the
 *    request's own) ended before that request was answered, so a goroutine that a request
 *    started and that lives on (a worker pool started on first use, any long-lived goroutine)
 *    never lends that request to calls it makes for others. Goroutine ids are never reused
 *    (newproc1 takes them from a per-P cache of a global counter), but g structs are: the
 *    maps are keyed by the id, so a recycled g carries nothing of its previous goroutine.
 */
#ifndef OSPREY_LIB_GOPROBES_H
#define OSPREY_LIB_GOPROBES_H

#include "goctx.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OSP_GO_CTX_BINS);
	__type(key, __u32);
	__type(value, struct osp_go_ctx);
} go_ctx_bins SEC(".maps");

/* a goroutine's parent, when it was started and when it ended (0: running; read by user space) */
struct go_parent {
	__u64 parent;
	__u64 ktime;
	__u64 exit_ktime;
};

/*
 * Bounded: at ~3 goroutines per request (serving, background reader, a fan-out child) 65536
 * entries hold the last ~20,000 requests' goroutines, far longer than the agent needs them
 * (it looks a child up when its call is reported, milliseconds later).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct go_gkey);
	__type(value, struct go_parent);
} go_parents SEC(".maps");

struct go_spawn {
	__u64 parent;
	__u64 callerpc;
};

/* newproc1 entry -> its return, by thread */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct go_spawn);
} go_spawning SEC(".maps");

static __always_inline const struct osp_go_ctx *go_ctx_bin(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	if (!cookie || cookie > OSP_GO_CTX_BINS)
		return NULL;
	__u32 slot = cookie - 1;
	return bpf_map_lookup_elem(&go_ctx_bins, &slot);
}

/* the socket fd of a net.Conn interface value at `iface` (a *net.TCPConn, or a *tls.Conn over one), or -1 */
static __always_inline int go_conn_fd(const struct osp_go_ctx *b, __u64 iface)
{
	__u64 tab = 0, data = 0, netfd = 0;
	__s64 fd = -1;
	if (bpf_probe_read_user(&tab, sizeof(tab), (void *)(iface + b->iface_tab)) ||
	    bpf_probe_read_user(&data, sizeof(data), (void *)(iface + b->iface_data)) || !data)
		return -1;
	if (b->itab_tls_conn && tab == b->itab_tls_conn) {
		iface = data + b->tls_conn_conn;
		if (bpf_probe_read_user(&tab, sizeof(tab), (void *)(iface + b->iface_tab)) ||
		    bpf_probe_read_user(&data, sizeof(data), (void *)(iface + b->iface_data)) || !data)
			return -1;
	}
	if (tab != b->itab_tcp_conn)
		return -1;
	if (bpf_probe_read_user(&netfd, sizeof(netfd), (void *)(data + b->tcp_conn_conn + b->conn_fd)) || !netfd)
		return -1;
	if (bpf_probe_read_user(&fd, sizeof(fd), (void *)(netfd + b->netfd_pfd + b->pfd_sysfd)))
		return -1;
	return fd >= 0 && fd < 0x7fffffff ? (int)fd : -1;
}

SEC("uprobe")
int osp_go_round_trip(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!traced(tgid) || !bpf_map_lookup_elem(&go_procs, &tgid))
		return 0;
	const struct osp_go_ctx *b = go_ctx_bin(ctx);
	if (!b)
		return 0;
	__u64 goid = 0;
	if (bpf_probe_read_user(&goid, sizeof(goid), (void *)(ctx->r14 + b->g_goid)) || !goid) {
		go_count(OSP_GC_READ_FAULT);
		return 0;
	}
	int fd = go_conn_fd(b, ctx->ax + b->pconn_conn);
	struct fd_key k = { .tgid = tgid, .fd = fd };
	struct conn *c = fd >= 0 ? bpf_map_lookup_elem(&conns, &k) : NULL;
	if (!c && fd >= 0 && !bpf_map_lookup_elem(&not_tcp, &k)) {
		/*
		 * a pooled connection dialled before the capture started, not used since: tracked
		 * from here, as its next syscall would (role unknown: no connect() was seen), so
		 * that this very request carries its caller
		 */
		struct sock *sk = tcp_sock_of_fd(fd);
		if (sk)
			c = conn_new(&k, sk, OSP_ROLE_UNKNOWN, 1);
	}
	if (!c) {
		go_count(OSP_GC_HANDOFF_UNBOUND);
		return 0;
	}
	bpf_map_update_elem(&go_conn_owner, &c->id, &goid, BPF_ANY);
	go_count(OSP_GC_HANDOFFS);
	return 0;
}

SEC("uprobe")
int osp_go_newproc(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if (!bpf_map_lookup_elem(&go_procs, &tgid))
		return 0;
	const struct osp_go_ctx *b = go_ctx_bin(ctx);
	if (!b)
		return 0;
	struct go_spawn s = { .callerpc = ctx->cx };
	if (!ctx->bx || bpf_probe_read_user(&s.parent, sizeof(s.parent), (void *)(ctx->bx + b->g_goid))) {
		go_count(OSP_GC_READ_FAULT);
		return 0;
	}
	bpf_map_update_elem(&go_spawning, &id, &s, BPF_ANY);
	return 0;
}

SEC("uprobe")
int osp_go_newproc_ret(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct go_spawn *sp = bpf_map_lookup_elem(&go_spawning, &id);
	if (!sp) {
		__u32 tgid = id >> 32;
		if (bpf_map_lookup_elem(&go_procs, &tgid))
			go_count(OSP_GC_UNPAIRED);
		return 0;
	}
	struct go_spawn s = *sp;
	bpf_map_delete_elem(&go_spawning, &id);
	const struct osp_go_ctx *b = go_ctx_bin(ctx);
	if (!b || !s.parent)
		return 0;
	struct go_gkey k = { .tgid = id >> 32 };
	if (!ctx->ax || bpf_probe_read_user(&k.goid, sizeof(k.goid), (void *)(ctx->ax + b->g_goid)) || !k.goid) {
		go_count(OSP_GC_READ_FAULT);
		return 0;
	}
	if (s.callerpc >= b->dial_conn_lo && s.callerpc < b->dial_conn_hi) {
		/* no parent, and none left by an earlier process of the same tgid (pid reuse) */
		bpf_map_delete_elem(&go_parents, &k);
		go_count(OSP_GC_POOL_SPAWNS);
		return 0;
	}
	if (s.callerpc >= b->bg_read_lo && s.callerpc < b->bg_read_hi) {
		bpf_map_delete_elem(&go_parents, &k);
		bpf_map_update_elem(&go_alias, &k, &s.parent, BPF_ANY);
		go_count(OSP_GC_ALIASES);
		return 0;
	}
	struct go_parent p = { .parent = s.parent, .ktime = bpf_ktime_get_ns() };
	bpf_map_update_elem(&go_parents, &k, &p, BPF_ANY);
	go_count(OSP_GC_SPAWNS);
	return 0;
}

SEC("uprobe")
int osp_go_exit(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!bpf_map_lookup_elem(&go_procs, &tgid))
		return 0;
	const struct osp_go_ctx *b = go_ctx_bin(ctx);
	if (!b)
		return 0;
	struct go_gkey k = { .tgid = tgid };
	if (!ctx->r14 || bpf_probe_read_user(&k.goid, sizeof(k.goid), (void *)(ctx->r14 + b->g_goid)) || !k.goid) {
		go_count(OSP_GC_READ_FAULT);
		return 0;
	}
	/* its read-ahead alias (a server connection's background reader) is of no use any more */
	bpf_map_delete_elem(&go_alias, &k);
	struct go_parent *p = bpf_map_lookup_elem(&go_parents, &k);
	if (!p)
		return 0;
	/* only this goroutine writes its entry after newproc1's return: no other writer races */
	p->exit_ktime = bpf_ktime_get_ns();
	go_count(OSP_GC_EXITS);
	return 0;
}

#endif
