/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Node runtime context (the running async context) for osp_event.rtx: not built yet, always 0. */
#ifndef OSPREY_NODECTX_H
#define OSPREY_NODECTX_H

static __always_inline __u64 node_runtime_ctx(__u64 pid_tgid)
{
	return 0;
}

#endif
