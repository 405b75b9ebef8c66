/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* Go runtime context (the running goroutine) for osp_event.rtx: not built yet, always 0. */
#ifndef OSPREY_GOCTX_H
#define OSPREY_GOCTX_H

static __always_inline __u64 go_runtime_ctx(__u64 pid_tgid)
{
	return 0;
}

#endif
