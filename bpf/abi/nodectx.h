/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * What the Node runtime-context probes (lib/nodectx.h) need to know of one node executable
 * (or libnode), written by user space (src/agent/nodectx/) into the node_bins array before
 * it attaches the file's uprobes, whose cookie is the slot index + 1. The offsets are read
 * from the file's own machine code (the instructions of the probed functions that use them),
 * never assumed from a Node version. Mirrored in src/kernel/abi-nodectx.ts.
 */
#ifndef OSPREY_ABI_NODECTX_H
#define OSPREY_ABI_NODECTX_H

#define OSP_NODE_BINS 16

struct osp_node_bin {
	__u32 wrap_realm;    /* node::BaseObject::realm_ (Realm*) in an AsyncWrap */
	__u32 realm_env;     /* node::Realm::env_ (Environment*) */
	__u32 wrap_async_id; /* node::AsyncWrap::async_id_ (double) */
	__u32 env_depth;     /* node::Environment::async_callback_scope_depth_ (size_t) */
	__u32 env_hooks;     /* node::Environment::async_hooks_ (AsyncHooks, embedded) */
	__u32 hooks_ids;     /* AsyncHooks::async_id_fields_ buffer (double*): [0] execution id, [1] trigger id */
};

#endif
