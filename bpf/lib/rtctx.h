/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Runtime context: which unit of work of a multiplexing runtime made a call (osp_event.rtx).
 *
 * A thread tells which request a call belongs to only when the runtime runs one request per
 * thread. Go multiplexes goroutines on threads and Node runs every request on one event loop,
 * so the agent asks the runtime itself, through uprobes, which goroutine or async context is
 * running on the calling thread. Each runtime keeps its own state (lib/goctx.h,
 * lib/nodectx.h); this file only asks them, and only for a process that rt_procs lists
 * (lib/rtprocs.h): one look-up for everybody else. 0 means unknown: the linker then falls back
 * to the rules that need no runtime context.
 */
#ifndef OSPREY_RTCTX_H
#define OSPREY_RTCTX_H

#include "rtprocs.h"
#include "goctx.h"
#include "nodectx.h"

/* op: the event's (enum osp_op); c: the connection of the call (Go's client hand-off is per
 * connection, Node's unit follows reads of server connections) */
static __always_inline __u64 runtime_ctx(__u64 pid_tgid, __u8 op, const struct conn *c)
{
	__u32 tgid = pid_tgid >> 32;
	__u32 *rt = bpf_map_lookup_elem(&rt_procs, &tgid);
	if (!rt)
		return 0;
	__u32 bits = *rt;
	if (bits & OSP_RT_GO) {
		__u64 v = go_runtime_ctx(pid_tgid, c->role, c->id);
		if (v)
			return v;
	}
	if (bits & OSP_RT_NODE)
		return node_call_ctx(pid_tgid, op, c->role, c->id);
	return 0;
}

#endif
