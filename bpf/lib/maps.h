/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/* maps shared by the capture programs; sizes are upper bounds, user space may shrink them */
#ifndef OSPREY_LIB_MAPS_H
#define OSPREY_LIB_MAPS_H

#include "../abi/events.h"

enum conn_state {
	CONN_UNKNOWN = 0, /* no payload yet: the protocol gate has not run */
	CONN_TRACKED = 1, /* passed the gate: every call is reported */
	CONN_IGNORED = 2, /* failed the gate: calls cost one lookup and nothing else */
};

struct fd_key {
	__u32 tgid;
	__s32 fd;
};

/* one message of an exchange being summarised (lib/http1x.h) */
struct hx_msg {
	__u64 ts;       /* start by the parser's rule: entry of the first write, exit of the first read */
	__u64 end;      /* exit of its last call */
	__u64 bytes;    /* size so far, head included */
	__u64 body_ts;  /* entry of its first call after the head (folded body), 0 when none */
	__u32 tid;      /* thread of its first bytes */
	__u32 head_len; /* start line to CRLFCRLF */
	__u64 rtx;      /* runtime context of its first bytes (lib/rtctx.h) */
};

struct conn {
	__u64 id;
	__u64 sk; /* struct sock address, for the inet_sock_set_state cleanup */
	__u8 state;
	__u8 role;
	__u8 family;
	__u8 preexisting;
	__u16 lport;
	__u16 rport;
	__u8 laddr[16];
	__u8 raddr[16];
	__u32 netns; /* network namespace inode: loopback tuples repeat across namespaces */
	/* HTTP/1 exchange being summarised (summarize mode, lib/http1x.h) */
	__u8 hx;       /* enum hx_state */
	__u8 hx_head;  /* the request is HEAD: its response has no body */
	__u16 status;
	__u8 resp_minor;
	__u8 tls;      /* the first bytes were a TLS record: the socket's payload is ciphertext */
	__u8 told;     /* an event of it may have reached user space (its close then goes too) */
	__u8 _pad1;
	struct hx_msg req;
	struct hx_msg resp;
	__s64 left;      /* body bytes still to come of the current message */
	/* HTTP/2 (lib/h2.h): the frame cursor of each direction, 0 = read, 1 = written */
	__u8 h2;           /* the connection speaks HTTP/2: frames are walked, not summarised */
	__u8 h2_type[2];   /* type of the frame whose payload is under way */
	__u8 h2_hdr_n[2];  /* bytes seen of a frame header split across calls */
	__u8 _pad2[3];
	__u32 h2_left[2];  /* payload bytes of that frame still to come */
	__u8 h2_hdr[2][16]; /* the split header's bytes (9 used) */
	/* the current server request's start, told to user space or not (enum hx_told, lib/http1x.h);
	 * a word: a process's first call and the request's answer race for it (compare-and-swap) */
	__u32 hd;
	__u32 tgid; /* its process (a close in softirq runs in another's context) */
};

/* one in-flight syscall per thread, from sys_enter to sys_exit */
struct inflight {
	__u64 ts;
	__u64 buf;    /* user buffer, iovec array or msghdr */
	__u32 op;     /* enum call_kind; 0: no call in flight */
	__s32 fd;
	__u32 iovcnt;
	__u32 _pad;
};

struct sk_owner {
	struct fd_key key;
	__u64 conn_id;
};

/* per-connection state, keyed by (tgid, fd); deleted on close */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fd_key);
	__type(value, struct conn);
} conns SEC(".maps");

/* socket -> owning fd, so a socket closed by the kernel (process exit) frees its entry */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct sk_owner);
} socks SEC(".maps");

/* fds known not to be TCP sockets (files, pipes, UDP, unix): skip without walking the fd table */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fd_key);
	__type(value, __u8);
} not_tcp SEC(".maps");

/*
 * The thread's call in flight, in the thread's own local storage: sys_enter writes it in
 * place, sys_exit reads it and clears op (0 = none). Cheaper than a hash map keyed by thread
 * (no bucket lock, no element taken from and given back to a free list on every call, which
 * were most of the per-call cost), and it goes away with the thread: nothing to leak, no
 * capacity to run out of. (Not countable from user space: a task storage has no keys to walk.)
 */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct inflight);
} inflight SEC(".maps");

/* this thread's slot of `inflight`; create: make it on first use */
static __always_inline struct inflight *inflight_slot(int create)
{
	return bpf_task_storage_get(&inflight, bpf_get_current_task_btf(), 0,
				    create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
}

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/*
 * One number for all CPUs: records the ring buffer refused (osp_event.lost). Not per-CPU,
 * unlike the counters: every record carries the sum as it stands, so it has to be one word
 * that each failure bumps atomically. A global (the object's .bss): the programs address it
 * directly, without a map look-up per record.
 */
__u64 lost_records = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OSP_C__COUNT);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* optional filters, consulted only when filter_pids / filter_cgroups is set */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} pid_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_filter SEC(".maps");

/* the request head's raw event, kept while its exchange is summarised: sent as it was if
 * summarising has to stop (lib/http1x.h) */
#define HX_HEAD 256
struct hx_pend {
	struct osp_event ev;
	__u8 data[HX_HEAD];
};

/*
 * Kept heads live in slots of an array indexed by the connection id (two per connection:
 * request, response), not in a hash map: keeping one is a copy in place and taking it one
 * compare-and-swap, where a hash map cost an element allocation, a bucket lock and a free per
 * head (lib/http1x.h: hx_keep, hx_take). owner is the key that holds the slot (conn id, bit 63
 * for a response), 0 when free. Two connections whose ids meet in one slot with exchanges
 * under way at the same time: the later one is not summarised (OSP_C_PENDING_FULL).
 */
#define HX_SLOTS 32768
struct hx_slot {
	struct hx_pend p;
	__u64 owner;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HX_SLOTS);
	__type(key, __u32);
	__type(value, struct hx_slot);
} hx_pending SEC(".maps");

static __always_inline struct hx_slot *hx_slot_of(__u64 key)
{
	__u32 i = (((__u32)key << 1) | (__u32)(key >> 63)) & (HX_SLOTS - 1);
	return bpf_map_lookup_elem(&hx_pending, &i);
}

/* exchange records and re-sent events are built here (the event scratch holds the current call) */
struct hx_out {
	struct osp_event ev;
	struct osp_exchange x;
	__u8 data[HX_HEAD];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2); /* 0: records and bytes-only events, 1: a kept event taken out of its slot */
	__type(key, __u32);
	__type(value, struct hx_out);
} hx_scratch SEC(".maps");

/* event scratch: header + payload is too big for the 512-byte stack */
struct scratch {
	struct osp_event ev;
	__u8 data[OSP_MAX_CAPTURE * 2];
	/* where the HTTP/1 head scan goes on (lib/http1x.h): kept here, not on the stack, so
	 * that the verifier knows nothing of its value and checks the scan's step once instead
	 * of once per position it could reach */
	__u32 scan_pos;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += 1;
}

#endif
