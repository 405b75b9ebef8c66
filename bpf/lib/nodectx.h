/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Node runtime context: which incoming request a Node process's call works for (osp_event.rtx).
 *
 * Node runs every request on one event-loop thread, so the thread says nothing. The unit of
 * work here is the incoming connection whose bytes started the JS that runs: rtx = the kernel
 * id (osp_event.conn_id) of that server connection. It is followed through the runtime's own
 * bookkeeping, read by uprobes on the node binary (or libnode), attached per file with the
 * file's node_bins slot (+1) as the cookie (src/agent/nodectx/):
 *
 *  - Every JS run that libuv starts (an I/O callback) enters node::InternalCallbackScope, with
 *    the native resource's async id; the outermost scope on the thread decides the unit
 *    (Environment::async_callback_scope_depth_ is 0 at its entry). Its ticks and microtasks
 *    run before that scope ends, under the same unit.
 *  - A read outside JS (libuv's, the depth is 0) right before: bytes of a server connection
 *    make that connection the unit; bytes of a client connection (a response) make the unit
 *    whatever wrote the connection's last request (node_conn_units), or unknown. The next
 *    outermost scope takes it: libuv calls the read callback right after the read.
 *  - Otherwise (a connect finished, a write completed, a DNS answer...) the unit the native
 *    resource was created under (AsyncWrap::AsyncReset, node_ids), or unknown.
 *  - JS-only hand-offs are invisible natively (timers, setImmediate, AsyncResource such as the
 *    http Agent's queue). Node keeps the running JS context's ids in async_id_fields even
 *    without async hooks; a call is attributed only when they show the native scope's own
 *    context, a resource created under the unit, a tick scheduled by either or by a microtask,
 *    or none (microtasks of the scope): a timer's or a queued request's code gives 0, so its
 *    calls get no parent.
 *
 * A call made inside JS gets the unit (osp_event.rtx); its writes on a client connection
 * record the unit there for the response. 0 means unknown: the linker then falls back to the
 * rules that need no runtime context.
 */
#ifndef OSPREY_NODECTX_H
#define OSPREY_NODECTX_H

#include "../abi/nodectx.h"
#include "rtprocs.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OSP_NODE_BINS);
	__type(key, __u32);
	__type(value, struct osp_node_bin);
} node_bins SEC(".maps");

/* per event-loop thread (pid_tgid) of a probed process */
struct node_thread {
	__u64 env;        /* Environment* of the thread's last scope */
	__u64 ids;        /* its async_id_fields buffer */
	__u64 unit;       /* unit of the outermost scope (valid while the depth is > 0) */
	__u64 scope_id;   /* async id of the outermost scope */
	__u64 last_id;    /* async id of the last scope entered (nested ones) */
	__u64 pending;    /* unit chosen by the last read outside JS */
	__u64 read_scope; /* async id of the resource whose scope took it */
	__u64 read_unit;  /* and the unit it took */
	__u64 reset_wrap; /* AsyncWrap under AsyncReset (entry to return) */
	__u32 depth_off;  /* osp_node_bin.env_depth of the file */
	__u32 wrap_id_off;
	__u8 pending_set;
	__u8 _pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct node_thread);
} node_threads SEC(".maps");

struct node_id_key {
	__u32 tgid;
	__u32 _pad;
	__u64 id;
};

/* async id of a native resource -> the unit it was created under (ids are never reused) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct node_id_key);
	__type(value, __u64);
} node_ids SEC(".maps");

/* client connection (conn id) -> the unit of its last write: its response belongs there */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} node_conn_units SEC(".maps");

/*
 * An async id is a double holding an integer (no floating point in BPF): from its bits.
 * Anything but a positive integer below 2^53 (kInvalidAsyncId is -1) gives 0.
 */
static __always_inline __u64 node_id_int(__u64 bits)
{
	if (bits >> 63)
		return 0;
	__u32 exp = (bits >> 52) & 0x7ff;
	if (exp < 1023 || exp > 1023 + 52)
		return 0;
	__u64 mant = (bits & ((1ULL << 52) - 1)) | (1ULL << 52);
	return mant >> (52 - (exp - 1023));
}

static __always_inline __u64 node_read_id(__u64 addr)
{
	__u64 bits = 0;
	if (bpf_probe_read_user(&bits, sizeof(bits), (void *)addr))
		return 0;
	return node_id_int(bits);
}

static __always_inline __u64 node_id_unit(__u32 tgid, __u64 id)
{
	if (!id)
		return 0;
	struct node_id_key k = { .tgid = tgid, .id = id };
	__u64 *u = bpf_map_lookup_elem(&node_ids, &k);
	return u ? *u : 0;
}

static __always_inline struct node_thread *node_thread_of(__u64 pid_tgid)
{
	struct node_thread *t = bpf_map_lookup_elem(&node_threads, &pid_tgid);
	if (t)
		return t;
	/* event_start asks node_call_ctx only for processes listed there (lib/rtctx.h) */
	rt_mark(pid_tgid >> 32, OSP_RT_NODE);
	struct node_thread z = {};
	bpf_map_update_elem(&node_threads, &pid_tgid, &z, BPF_NOEXIST);
	return bpf_map_lookup_elem(&node_threads, &pid_tgid);
}

/* the JS running now belongs to the thread's unit (see the head of this file); 1 or 0 */
static __always_inline int node_js_in_unit(struct node_thread *t, __u32 tgid)
{
	__u64 bits[2] = {};
	if (!t->ids || bpf_probe_read_user(bits, sizeof(bits), (void *)t->ids))
		return 0;
	__u64 exec = node_id_int(bits[0]), trigger = node_id_int(bits[1]);
	if (!exec && !trigger)
		return 1; /* microtasks at the end of the scope: no JS resource runs */
	/* the running resource is the scope's, or a native one made under the unit */
	if (exec == t->scope_id || exec == t->last_id || node_id_unit(tgid, exec) == t->unit)
		return 1;
	/*
	 * A JS-only resource (a tick, a timer, an AsyncResource): only if it was scheduled from
	 * the scope's own context, or from a microtask (trigger 0: ticks and microtasks queued
	 * during this scope all run before it ends). A timer or a queued request's
	 * AsyncResource has ids of its own origin: not followed.
	 */
	return !trigger || trigger == t->scope_id || trigger == t->last_id || node_id_unit(tgid, trigger) == t->unit;
}

/* the unit of JS running on the thread now, 0 outside JS or when unknown */
static __always_inline __u64 node_unit_now(struct node_thread *t, __u32 tgid, __u64 *depth)
{
	*depth = 0;
	if (!t->env || bpf_probe_read_user(depth, sizeof(*depth), (void *)(t->env + t->depth_off)))
		return 0;
	if (!*depth || !t->unit)
		return 0;
	return node_js_in_unit(t, tgid) ? t->unit : 0;
}

/* a callback scope opens: env and the resource's async id */
static __always_inline void node_scope(struct pt_regs *ctx, const struct osp_node_bin *b, __u64 env, __u64 id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct node_thread *t = node_thread_of(pid_tgid);
	if (!t || !env)
		return;
	__u64 depth = 0;
	if (bpf_probe_read_user(&depth, sizeof(depth), (void *)(env + b->env_depth)))
		return;
	if (t->env != env) {
		__u64 ids = 0;
		bpf_probe_read_user(&ids, sizeof(ids), (void *)(env + b->env_hooks + b->hooks_ids));
		t->env = env;
		t->ids = ids;
		t->depth_off = b->env_depth;
		t->wrap_id_off = b->wrap_async_id;
	}
	if (!depth) {
		/*
		 * The outermost scope: a read's callback takes the read's unit, others their
		 * resource's. One read can run several scopes of its resource in turn (the HTTP
		 * parser's headers-complete, message-complete and execute callbacks): all of them.
		 */
		if (t->pending_set) {
			t->unit = t->pending;
			t->read_scope = id;
			t->read_unit = t->pending;
			t->pending_set = 0;
		} else if (id && id == t->read_scope) {
			t->unit = t->read_unit;
		} else {
			t->unit = node_id_unit(pid_tgid >> 32, id);
		}
		t->scope_id = id;
	}
	t->last_id = id;
}

static __always_inline const struct osp_node_bin *node_bin(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	if (!cookie || cookie > OSP_NODE_BINS)
		return NULL;
	__u32 slot = cookie - 1;
	return bpf_map_lookup_elem(&node_bins, &slot);
}

/* node::InternalCallbackScope::InternalCallbackScope(AsyncWrap*, int): RSI = the AsyncWrap */
SEC("uprobe")
int osp_node_scope_wrap(struct pt_regs *ctx)
{
	const struct osp_node_bin *b = node_bin(ctx);
	__u64 wrap = ctx->si, realm = 0, env = 0;
	if (!b || !wrap)
		return 0;
	if (bpf_probe_read_user(&realm, sizeof(realm), (void *)(wrap + b->wrap_realm)) || !realm)
		return 0;
	if (bpf_probe_read_user(&env, sizeof(env), (void *)(realm + b->realm_env)))
		return 0;
	node_scope(ctx, b, env, node_read_id(wrap + b->wrap_async_id));
	return 0;
}

/* InternalCallbackScope(Environment*, Local<Object>, const async_context&, int): RSI env, RCX ids */
SEC("uprobe")
int osp_node_scope_env(struct pt_regs *ctx)
{
	const struct osp_node_bin *b = node_bin(ctx);
	if (!b)
		return 0;
	node_scope(ctx, b, ctx->si, node_read_id(ctx->cx));
	return 0;
}

/* node::AsyncWrap::AsyncReset(Local<Object>, double, bool): a resource gets a new async id */
SEC("uprobe")
int osp_node_reset(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct node_thread *t = bpf_map_lookup_elem(&node_threads, &pid_tgid);
	if (t)
		t->reset_wrap = ctx->di;
	return 0;
}

SEC("uretprobe")
int osp_node_reset_ret(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct node_thread *t = bpf_map_lookup_elem(&node_threads, &pid_tgid);
	if (!t || !t->reset_wrap)
		return 0;
	__u64 wrap = t->reset_wrap;
	t->reset_wrap = 0;
	struct node_id_key k = { .tgid = pid_tgid >> 32, .id = node_read_id(wrap + t->wrap_id_off) };
	if (!k.id)
		return 0;
	__u64 depth = 0;
	__u64 unit = node_unit_now(t, k.tgid, &depth);
	if (unit)
		bpf_map_update_elem(&node_ids, &k, &unit, BPF_ANY);
	return 0;
}

/*
 * The runtime context of a call of a probed Node thread, and what the call teaches (called by
 * event_start for every event). A global function: the verifier checks it once, not at each
 * of event_start's many inlined sites. 0 for any thread that is not a probed Node thread.
 */
__noinline __u64 node_call_ctx(__u64 pid_tgid, __u32 op, __u32 role, __u64 conn_id)
{
	struct node_thread *t = bpf_map_lookup_elem(&node_threads, &pid_tgid);
	if (!t)
		return 0;
	__u64 depth = 0;
	__u64 unit = node_unit_now(t, pid_tgid >> 32, &depth);
	if (!depth) {
		/* libuv's own call: a read decides the unit of the callback that follows it */
		if (op != OSP_OP_RECV)
			return 0;
		if (role == OSP_ROLE_SERVER) {
			unit = conn_id;
		} else {
			__u64 *u = bpf_map_lookup_elem(&node_conn_units, &conn_id);
			unit = u ? *u : 0;
		}
		t->pending = unit;
		t->pending_set = 1;
		t->read_scope = 0;
		return unit;
	}
	if (role == OSP_ROLE_CLIENT && (op == OSP_OP_SEND || op == OSP_OP_CONNECT)) {
		if (unit)
			bpf_map_update_elem(&node_conn_units, &conn_id, &unit, BPF_ANY);
		else
			bpf_map_delete_elem(&node_conn_units, &conn_id);
	}
	return unit;
}

#endif
