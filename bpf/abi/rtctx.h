/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Which processes run a runtime whose context is read at their calls (lib/rtctx.h): the
 * rt_procs map, tgid -> a set of enum osp_rt bits. Mirrored in src/kernel/abi-rtctx.ts
 * (checked against this object's BTF in src/kernel/abi.test.ts).
 */
#ifndef OSPREY_ABI_RTCTX_H
#define OSPREY_ABI_RTCTX_H

enum osp_rt {
	/* written by user space with the process's go_procs entry (src/agent/golang/runtime-probes.ts) */
	OSP_RT_GO = 1,
	/* set by the kernel when a thread of the process first enters a probed Node callback scope */
	OSP_RT_NODE = 2,
};

#define OSP_RT_PROCS 16384

#endif
