/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * rt_procs: the ONE per-process look-up that tells event_start (lib/rtctx.h) whether a call's
 * process has a runtime to ask for its context at all. Most processes run none: their events
 * cost this look-up and no call into goctx.h or nodectx.h.
 *
 * An LRU map: Node's bit is set by the kernel (a process's threads first entering a probed
 * callback scope) and nobody learns when such a process exits; old entries fall out by
 * themselves. OSP_RT_PROCS is far above the processes that run a probed runtime at once, and
 * every event of a listed process refreshes its entry.
 */
#ifndef OSPREY_RTPROCS_H
#define OSPREY_RTPROCS_H

#include "../abi/rtctx.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OSP_RT_PROCS);
	__type(key, __u32);   /* tgid */
	__type(value, __u32); /* enum osp_rt bits */
} rt_procs SEC(".maps");

/* keeps the enum in the object's BTF for the layout test */
enum osp_rt osp_rt_btf __attribute__((unused));

/* the process runs runtime `bit` (kernel side: Node) */
static __always_inline void rt_mark(__u32 tgid, __u32 bit)
{
	__u32 *v = bpf_map_lookup_elem(&rt_procs, &tgid);
	if (v) {
		if (!(*v & bit))
			__sync_fetch_and_or(v, bit);
		return;
	}
	bpf_map_update_elem(&rt_procs, &tgid, &bit, BPF_NOEXIST);
	v = bpf_map_lookup_elem(&rt_procs, &tgid);
	if (v && !(*v & bit))
		__sync_fetch_and_or(v, bit); /* another CPU inserted it first */
}

#endif
