/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The wire contract between bpf/ and user space (src/kernel/abi.ts).
 *
 * Every ring-buffer record is one struct osp_event: a fixed header followed by
 * `cap` bytes of captured payload. Plain C types only, no packing, explicit
 * padding (zeroed) so the layout is identical for clang -target bpf and for the
 * BTF-driven layout test in src/kernel/abi.test.ts.
 */
#ifndef OSPREY_ABI_EVENTS_H
#define OSPREY_ABI_EVENTS_H

#define OSP_ABI_VERSION 1

/* most payload bytes a single event can carry; capture_size is clamped to it */
#define OSP_MAX_CAPTURE 4096
#define OSP_COMM_LEN 16

enum osp_op {
	OSP_OP_CONNECT = 1, /* connect() returned 0 or -EINPROGRESS on a TCP socket */
	OSP_OP_ACCEPT = 2,  /* accept()/accept4() returned a TCP socket */
	OSP_OP_SEND = 3,    /* write/writev/sendto/sendmsg/sendfile moved bytes */
	OSP_OP_RECV = 4,    /* read/readv/recvfrom/recvmsg returned bytes */
	OSP_OP_CLOSE = 5,   /* close() of a tracked fd, or the socket reached TCP_CLOSE */
	/*
	 * One whole HTTP/1 exchange summarised by the kernel (summarize mode): the header is
	 * the request's (ts = request start, ts_end = response end, bytes = request size,
	 * tid = the thread that read/wrote the request's first bytes); the payload is a
	 * struct osp_exchange followed by the request head's first bytes.
	 */
	OSP_OP_EXCHANGE = 6,
	/*
	 * Linking hints of an exchange the kernel summarises (summarize mode): the request began
	 * (HEAD: the head's first bytes as payload, ts = request start, tid = the thread that read
	 * or wrote it) and, for a server, the response started (RESPONDED: ts = response start,
	 * tid = the writing thread; sent only when the response does not end in the same call).
	 * The linker needs them in time order; the exchange record comes when the response ended.
	 * Sent only when linking needs them (lib/http1x.h, "Linking hints"): a server request's
	 * when its process calls out, a call's when its process serves. A HEAD may come late (the
	 * process's first call tells the requests it has in flight), with its own ts.
	 */
	OSP_OP_HEAD = 7,
	OSP_OP_RESPONDED = 8,
};

enum osp_flag {
	OSP_F_TRUNCATED = 1 << 0, /* bytes > cap: the payload prefix is shorter than the call */
	OSP_F_IGNORED = 1 << 1,   /* first payload failed the protocol gate; nothing follows */
	OSP_F_SENDFILE = 1 << 2,  /* bytes came from sendfile: no payload captured */
	OSP_F_PREEXISTING = 1 << 3, /* connection opened before attach (role unknown) */
	OSP_F_KERNEL_CLOSE = 1 << 4, /* close seen via sock:inet_sock_set_state, not close() */
	/* summarize mode */
	OSP_F_ELIDED = 1 << 5,  /* stands for calls the kernel summarised: bytes and times, no payload */
	OSP_F_SHADOW = 1 << 6,  /* shadow mode: a call the kernel summarised, sent anyway for comparison */
	OSP_F_REPLAY = 1 << 7,  /* a summarised call sent again because summarising stopped (fallback) */
};

/* the `summarize` setting: what the kernel does with HTTP/1 (bpf/lib/http1x.h) */
enum hx_mode {
	HX_MODE_OFF = 0,    /* every call as a raw event */
	HX_MODE_ON = 1,     /* one record per simple exchange, raw events for the rest */
	HX_MODE_SHADOW = 2, /* both, flagged: the equivalence test */
};

/*
 * osp_event.link (summarize mode, lib/http1x.h "Linking hints"): what user space must know
 * of a request start to link it soundly
 */
enum osp_link {
	/*
	 * A request of this process may be in flight whose start user space has not been told:
	 * on a client request, its thread and unit of work may be working on a request user space
	 * does not know of (no thread or runtime parent for it); on a server request, others of
	 * its thread may be (it is no proof for the thread rule)
	 */
	OSP_L_UNSURE = 1 << 0,
};

/* osp_exchange.xflags */
enum osp_xflag {
	OSP_X_EOF = 1 << 0,        /* the response ran until the connection closed */
	OSP_X_INCOMPLETE = 1 << 1, /* the connection closed before the response ended */
};

/* the payload of an OSP_OP_EXCHANGE record, before the request head bytes */
struct osp_exchange {
	unsigned long long req_end;    /* request's last call, exit */
	unsigned long long resp_ts;    /* response start (entry of the first write / exit of the first read) */
	unsigned long long resp_bytes; /* response size, head included */
	unsigned long long req_call_ts;     /* the request's first call: entry and exit, as a raw event has them */
	unsigned long long req_call_ts_end;
	unsigned int resp_tid;         /* thread of the response's first bytes */
	unsigned int req_head_len;     /* request head length (request line to CRLFCRLF) */
	unsigned int resp_head_len;
	unsigned short status;
	unsigned char resp_minor;      /* HTTP/1.<minor> of the status line */
	unsigned char xflags;          /* enum osp_xflag */
	unsigned long long resp_rtx;   /* runtime context of the response's first bytes (see osp_event.rtx) */
};

enum osp_role {
	OSP_ROLE_UNKNOWN = 0,
	OSP_ROLE_CLIENT = 1, /* we called connect() */
	OSP_ROLE_SERVER = 2, /* we got it from accept() */
};

enum osp_counter {
	OSP_C_RB_DROPPED = 0,     /* ring buffer full: event lost */
	OSP_C_TRUNCATED = 1,      /* payload longer than capture_size */
	OSP_C_CONN_IGNORED = 2,   /* connections marked ignored by the protocol gate */
	OSP_C_CONN_TRACKED = 3,   /* connections that passed the gate */
	OSP_C_CONN_OPENED = 4,    /* TCP connections seen (connect/accept/pre-existing) */
	OSP_C_CONN_TABLE_FULL = 5, /* conns map update failed */
	OSP_C_INFLIGHT_FULL = 6,  /* no inflight slot for the thread (task storage allocation failed): call not captured */
	OSP_C_READ_FAULT = 7,     /* bpf_probe_read_user of a payload failed */
	OSP_C_PREEXISTING = 8,    /* connections picked up at first read/write */
	OSP_C_KERNEL_CLOSE = 9,   /* tracked connections closed without close() */
	OSP_C_EVENTS = 10,        /* events written to the ring buffer */
	OSP_C_EXCHANGES = 11,     /* exchanges summarised by the kernel */
	OSP_C_ELIDED = 12,        /* calls folded into an exchange record (not sent) */
	OSP_C_FALLBACK = 13,      /* connections the kernel stopped summarising (raw events from then on) */
	OSP_C_PENDING_FULL = 14,  /* no slot to keep a head in (another exchange holds it): raw events instead */
	OSP_C_TLS_CONNS = 15,     /* connections whose first bytes were a TLS record */
	OSP_C_TLS_CIPHER = 16,    /* calls of TLS connections at the socket (ciphertext): not reported */
	OSP_C_TLS_PLAINTEXT = 17, /* plaintext calls (SSL_read/SSL_write...) reported for a socket */
	OSP_C_TLS_UNBOUND = 18,   /* plaintext calls whose socket was not known: dropped */
	OSP_C_TLS_REBIND = 19,    /* a TLS session seen on another socket than the one it was bound to */
	OSP_C_H2_LOST = 20,       /* HTTP/2 connections whose frame cursor was lost (too many frames or header
				   * bytes in one call): ignored from then on */
	OSP_C__COUNT = 21,
};

struct osp_event {
	unsigned char op;     /* enum osp_op */
	unsigned char flags;  /* enum osp_flag bits */
	unsigned short size;  /* whole record: header + cap */
	unsigned int pid;     /* tgid */
	unsigned int tid;
	int fd;
	unsigned long long ts;      /* bpf_ktime_get_ns() at syscall entry */
	unsigned long long ts_end;  /* bpf_ktime_get_ns() at syscall exit */
	unsigned long long conn_id; /* unique per connection while the agent runs */
	long long bytes;            /* full length of the call (return value) */
	unsigned int cap;           /* payload bytes following the header */
	unsigned char family;       /* AF_INET (2) or AF_INET6 (10) */
	unsigned char role;         /* enum osp_role */
	unsigned short lport;       /* host order */
	unsigned short rport;       /* host order */
	unsigned char tls;          /* 1: a TLS connection; payloads are its plaintext, from uprobes */
	unsigned char link;         /* enum osp_link bits */
	unsigned int netns;         /* network namespace inode number of the socket */
	unsigned char laddr[16];    /* IPv4 in the first 4 bytes */
	unsigned char raddr[16];
	char comm[OSP_COMM_LEN];
	/*
	 * Runtime context of the call, 0 when unknown: which unit of work of a multiplexing
	 * runtime made it (bpf/lib/rtctx.h). Its meaning depends on the process's runtime (for Go
	 * a goroutine, for Node an async context); only equality within one process counts.
	 */
	unsigned long long rtx;
	/*
	 * Records the ring buffer refused so far, all CPUs together, as read just before this
	 * record was written (lib/http1x.h rb_out). User space compares it with the largest value
	 * seen: a larger one means records were lost before this one, so linking state that the
	 * lost records could have changed is no longer trusted (src/agent/linker.ts, loss barrier).
	 */
	unsigned long long lost;
	/* followed by cap bytes of payload */
};

/* not sent: names the enums so they reach BTF for src/kernel/abi.test.ts */
struct osp_abi_enums {
	enum osp_op op;
	enum osp_flag flag;
	enum osp_role role;
	enum osp_counter counter;
	enum osp_xflag xflag;
	enum osp_link link;
	struct osp_exchange exchange;
};

#endif
