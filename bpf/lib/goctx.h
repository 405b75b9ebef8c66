/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Go runtime context for osp_event.rtx: the goroutine a call belongs to.
 *
 * The goroutine running on a thread is read where the call is seen, without scheduler probes:
 * a Go thread keeps its current g in thread-local storage, at a fixed offset from the FS base
 * (-8 for a program without C thread-locals; user space finds it in the ELF's PT_TLS). The
 * syscall runs on the goroutine's own g (entersyscall does not switch to g0), so
 * g->goid is the goroutine that made the call. Only processes user space registered in
 * go_procs (Go executables whose analysis succeeded) pay more than one map lookup.
 *
 * Two hand-offs the goroutine id alone would get wrong:
 *  - net/http's client (http.Transport, HTTP/1) writes a request on the connection's
 *    writeLoop goroutine and reads its response on readLoop, both started when the connection
 *    was dialled (for whichever request dialled it). (*persistConn).roundTrip, run by the
 *    caller's goroutine, is probed (lib/goprobes.h): it records the caller in go_conn_owner
 *    under the connection's id, and every call on that connection carries the caller from
 *    then on. Sound because an HTTP/1 persistConn carries one request at a time: the next
 *    roundTrip on it replaces the owner.
 *  - net/http's server reads ahead on a connection's background reader goroutine (started by
 *    the serving goroutine for each request): its calls carry the serving goroutine
 *    (go_alias, filled when the reader is started).
 */
#ifndef OSPREY_GOCTX_H
#define OSPREY_GOCTX_H

#include "abi/goctx.h"

/* Go processes whose runtime context is read: filled and emptied by user space */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct osp_go_proc);
} go_procs SEC(".maps");

/* connection id -> the goroutine that handed its current request to the connection */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} go_conn_owner SEC(".maps");

struct go_gkey {
	__u32 tgid;
	__u32 _pad;
	__u64 goid;
};

/* a goroutine that works for another one (a server connection's background reader) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct go_gkey);
	__type(value, __u64);
} go_alias SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, OSP_GC__COUNT);
	__type(key, __u32);
	__type(value, __u64);
} go_ctx_counters SEC(".maps");

/* keeps the counter enum in the object's BTF for the layout test */
enum osp_go_counter osp_go_counter_btf __attribute__((unused));

static __always_inline void go_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&go_ctx_counters, &idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

/* the goroutine id of the current thread's g, 0 when it cannot be read */
static __always_inline __u64 go_current_goid(const struct osp_go_proc *p)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	__u64 fsbase = BPF_CORE_READ(t, thread.fsbase);
	__u64 g = 0, goid = 0;
	if (!fsbase || bpf_probe_read_user(&g, sizeof(g), (void *)(fsbase + p->g_tls)) || !g)
		return 0;
	if (bpf_probe_read_user(&goid, sizeof(goid), (void *)(g + p->g_goid)))
		return 0;
	return goid;
}

/*
 * A global function (scalar arguments only): the verifier checks it once, and its stack is not
 * added to every program that makes an event (event_start is inlined at many sites, some under
 * hx_step, and the 512-byte limit counts the whole call chain).
 */
__noinline __u64 go_runtime_ctx(__u64 pid_tgid, __u32 role, __u64 conn_id)
{
	__u32 tgid = pid_tgid >> 32;
	struct osp_go_proc *p = bpf_map_lookup_elem(&go_procs, &tgid);
	if (!p)
		return 0;
	/*
	 * not only OSP_ROLE_CLIENT: a pooled connection dialled before the capture started has no
	 * known role (no connect() seen), and a long-running service's pool is mostly such
	 * connections. Only roundTrip writes go_conn_owner, for client connections alone.
	 */
	if (role != OSP_ROLE_SERVER) {
		__u64 *owner = bpf_map_lookup_elem(&go_conn_owner, &conn_id);
		if (owner)
			return *owner;
	}
	__u64 goid = go_current_goid(p);
	if (!goid)
		return 0;
	struct go_gkey k = { .tgid = tgid, .goid = goid };
	__u64 *alias = bpf_map_lookup_elem(&go_alias, &k);
	return alias ? *alias : goid;
}

#endif
