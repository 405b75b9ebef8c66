// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Socket capture on syscall tracepoints only (no kprobes, no fentry).
 *
 * sys_enter_* remembers the arguments of a call on a TCP socket we care about;
 * sys_exit_* reads the return value and emits one struct osp_event with the
 * full length of the call and the first capture_size bytes of its payload.
 * accept/connect create the per-connection state, close (or the socket reaching
 * TCP_CLOSE) removes it. Connections that predate attach are picked up at their
 * first read/write: the fd is resolved to its socket from the task's fd table.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#include "abi/events.h"
#include "lib/maps.h"
#include "lib/sock.h"
#include "lib/gate.h"
#include "lib/rtctx.h"

char LICENSE[] SEC("license") = "GPL";

/* tunables, set by user space between open and load */
const volatile __u32 self_tgid = 0;
const volatile __u32 capture_size = 256;
const volatile __u32 wakeup_bytes = 256 * 1024;
const volatile __u8 filter_pids = 0;
const volatile __u8 filter_cgroups = 0;
/* enum hx_mode: summarise HTTP/1 exchanges in the kernel (lib/http1x.h) */
const volatile __u8 summarize = 0;

__u64 conn_seq = 0;

#include "lib/http1x.h"
#include "lib/tls.h"
#include "lib/h2.h"

/* keeps the ABI enums in the object's BTF for the layout test */
struct osp_abi_enums osp_abi_enums_btf __attribute__((unused));
enum hx_mode osp_hx_mode_btf __attribute__((unused));

#define EINPROGRESS 115
#define TCP_CLOSE 7
#define MAX_IOV 8

enum call_kind {
	CALL_ACCEPT = 1,
	CALL_CONNECT,
	CALL_RECV,    /* read, recvfrom: (fd, buf) */
	CALL_SEND,    /* write, sendto: (fd, buf) */
	CALL_RECVV,   /* readv: (fd, iov, iovcnt) */
	CALL_SENDV,   /* writev */
	CALL_RECVMSG, /* recvmsg: (fd, msghdr) */
	CALL_SENDMSG,
	CALL_SENDFILE, /* sendfile: (out_fd, in_fd): no payload to read */
};

static __always_inline int traced(__u32 tgid)
{
	if (tgid == self_tgid)
		return 0;
	if (filter_pids && !bpf_map_lookup_elem(&pid_filter, &tgid))
		return 0;
	if (filter_cgroups) {
		__u64 cg = bpf_get_current_cgroup_id();
		if (!bpf_map_lookup_elem(&cgroup_filter, &cg))
			return 0;
	}
	return 1;
}

static __always_inline void stash(__u32 kind, int fd, __u64 buf, __u32 iovcnt)
{
	struct inflight *in = inflight_slot(1);
	if (!in) {
		count(OSP_C_INFLIGHT_FULL);
		return;
	}
	in->ts = bpf_ktime_get_ns();
	in->buf = buf;
	in->op = kind;
	in->fd = fd;
	in->iovcnt = iovcnt;
}

/* create the state of a new TCP connection on fd; returns it, or NULL */
static __always_inline struct conn *conn_new(struct fd_key *k, struct sock *sk, __u8 role,
					     __u8 preexisting)
{
	struct conn c = {};
	c.id = __sync_fetch_and_add(&conn_seq, 1) + 1;
	c.sk = (__u64)sk;
	c.role = role;
	c.preexisting = preexisting;
	c.tgid = k->tgid;
	c.state = CONN_UNKNOWN;
	read_tuple(sk, &c);
	if (bpf_map_update_elem(&conns, k, &c, BPF_ANY)) {
		count(OSP_C_CONN_TABLE_FULL);
		return NULL;
	}
	struct sk_owner o = { .key = *k, .conn_id = c.id };
	bpf_map_update_elem(&socks, &c.sk, &o, BPF_ANY);
	bpf_map_delete_elem(&not_tcp, k);
	count(OSP_C_CONN_OPENED);
	if (preexisting)
		count(OSP_C_PREEXISTING);
	return bpf_map_lookup_elem(&conns, k);
}

/*
 * Fills the CPU's event scratch for a call on `c`. A global function (its pointer arguments are
 * plain memory to the verifier): checked once per program on its own, not again at every
 * site that makes an event with whatever the verifier knows there. 0 when filled.
 */
__noinline int event_fill(struct scratch *s, struct conn *c, __u32 op, __s32 fd, __u64 ts)
{
	if (!s || !c)
		return -1;
	/* every event of a connection is filled here first (a kept head too, before it is
	 * re-sent): a connection never filled has never been heard of in user space (conn_opened) */
	c->told = 1;
	struct osp_event *e = &s->ev;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	e->op = op;
	e->flags = c->preexisting ? OSP_F_PREEXISTING : 0;
	e->size = sizeof(*e);
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->fd = fd;
	e->ts = ts;
	e->ts_end = bpf_ktime_get_ns();
	e->conn_id = c->id;
	e->bytes = 0;
	e->cap = 0;
	e->family = c->family;
	e->role = c->role;
	e->lport = c->lport;
	e->rport = c->rport;
	e->tls = c->tls;
	e->link = 0;
	e->netns = c->netns;
	__builtin_memcpy(e->laddr, c->laddr, 16);
	__builtin_memcpy(e->raddr, c->raddr, 16);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->rtx = runtime_ctx(pid_tgid, op, c);
	return 0;
}

static __always_inline struct scratch *event_start(__u8 op, struct conn *c, int fd, __u64 ts)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s || event_fill(s, c, op, fd, ts))
		return NULL;
	return s;
}

/* the scratch event out, sized by its capture (global: one check per program) */
__noinline int event_submit(struct scratch *s)
{
	if (!s)
		return 0;
	__u32 cap = s->ev.cap;
	if (cap > OSP_MAX_CAPTURE)
		cap = OSP_MAX_CAPTURE;
	__u64 size = sizeof(struct osp_event) + cap;
	s->ev.size = size;
	rb_out(s, size);
	return 0;
}

static __always_inline __u32 cap_limit(void)
{
	__u32 lim = capture_size;
	return lim > OSP_MAX_CAPTURE ? OSP_MAX_CAPTURE : lim;
}

/*
 * One iovec (its struct at user address `at`) into the event payload at `off`: the bytes
 * copied, or -1 to stop. A global function: the unrolled loop below makes one call per iovec
 * instead of a copy of this body whose lengths the verifier would carry on as states.
 */
__noinline int iov_copy(struct scratch *s, __u64 at, __u32 off, __u32 want)
{
	if (!s || off >= want)
		return -1;
	struct iovec v = {};
	if (bpf_probe_read_user(&v, sizeof(v), (void *)at))
		return -1;
	__u64 len = v.iov_len;
	__u32 left = want - off;
	if (len > left)
		len = left;
	if (len > OSP_MAX_CAPTURE)
		len = OSP_MAX_CAPTURE;
	__u32 o = off & (OSP_MAX_CAPTURE - 1);
	if (len && bpf_probe_read_user(&s->data[o], len, v.iov_base)) {
		count(OSP_C_READ_FAULT);
		return -1;
	}
	return len;
}

/* copy up to `want` bytes from the first iovecs into s->data */
static __always_inline __u32 copy_iov(struct scratch *s, __u64 iov_addr, __u32 iovcnt, __u32 want)
{
	__u32 off = 0;
#pragma unroll
	for (int i = 0; i < MAX_IOV; i++) {
		if (i >= iovcnt || off >= want)
			break;
		int n = iov_copy(s, iov_addr + i * sizeof(struct iovec), off, want);
		if (n < 0)
			break;
		off += n;
	}
	return off;
}

/*
 * One data call, for the global functions below (a BPF function takes at most five
 * arguments): what sys_enter stashed and sys_exit returned, or a TLS library call's plaintext.
 */
struct data_call {
	__u64 buf;    /* user buffer, iovec array or msghdr (enum call_kind says which) */
	__u64 ts;     /* the call's entry */
	__s64 ret;    /* bytes the call moved (> 0) */
	__s32 fd;
	__u32 op;     /* enum call_kind */
	__u32 iovcnt;
	__u32 socket; /* 1: a socket call at sys_exit, 0: plaintext from a uprobe */
};

static __always_inline int call_sends(__u32 op)
{
	return op == CALL_SEND || op == CALL_SENDV || op == CALL_SENDMSG || op == CALL_SENDFILE;
}

/*
 * An HTTP/2 call: walk its frames into the event (lib/h2.h); a lost cursor ignores the
 * connection. A global function: checked once per program, not at each of its two sites.
 */
__noinline int h2_call(struct conn *c, struct scratch *s, const struct data_call *d, int send, __u32 skip)
{
	if (!c || !s || !d)
		return 0;
	__u32 op = d->op;
	long ret = d->ret;
	struct h2_walk w = {};
	w.todo = ret;
	w.out = skip;
	w.left = skip;
	if (op == CALL_RECV || op == CALL_SEND) {
		w.base = d->buf;
		w.len = ret;
	} else if (op == CALL_RECVV || op == CALL_SENDV) {
		w.iov = d->buf;
		w.iv_n = d->iovcnt;
	} else if (op == CALL_RECVMSG || op == CALL_SENDMSG) {
		struct user_msghdr msg = {};
		if (!bpf_probe_read_user(&msg, sizeof(msg), (void *)d->buf)) {
			w.iov = (__u64)msg.msg_iov;
			w.iv_n = msg.msg_iovlen;
		}
	}
	s->ev.flags &= ~OSP_F_TRUNCATED;
	if (skip) {
		/* a new HTTP/2 stream of bytes in both directions: frames start here */
		__builtin_memset(c->h2_left, 0, sizeof(c->h2_left));
		__builtin_memset(c->h2_hdr_n, 0, sizeof(c->h2_hdr_n));
	}
	if (h2_load(c, &w, send) == 0)
		bpf_loop(H2_MAX_STEPS, h2_step, &w, 0);
	if (h2_store(c, &w, send) < 0) {
		c->state = CONN_IGNORED;
		s->ev.flags |= OSP_F_IGNORED;
		s->ev.cap = 0;
		count(OSP_C_H2_LOST);
		return 0;
	}
	s->ev.cap = w.out;
	return 0;
}

/*
 * The first capture_size bytes of the call's payload into the event; returns how many. A
 * global function: the many lengths its copy paths end with would otherwise each be a state
 * the verifier carries through everything that follows in data_out.
 */
__noinline __u32 data_copy(struct scratch *s, const struct data_call *d)
{
	if (!s || !d)
		return 0;
	__u32 op = d->op;
	long ret = d->ret;
	__u32 want = cap_limit();
	if ((__u64)ret < want)
		want = ret;
	__u32 got = 0;
	if (op == CALL_SENDFILE) {
		s->ev.flags |= OSP_F_SENDFILE;
	} else if (op == CALL_RECV || op == CALL_SEND) {
		got = want;
		if (got > OSP_MAX_CAPTURE)
			got = OSP_MAX_CAPTURE;
		if (got && bpf_probe_read_user(s->data, got, (void *)d->buf)) {
			count(OSP_C_READ_FAULT);
			got = 0;
		}
	} else {
		__u64 iov = d->buf;
		__u32 iovcnt = d->iovcnt;
		if (op == CALL_RECVMSG || op == CALL_SENDMSG) {
			struct user_msghdr msg = {};
			if (bpf_probe_read_user(&msg, sizeof(msg), (void *)d->buf))
				iovcnt = 0;
			iov = (__u64)msg.msg_iov;
			iovcnt = msg.msg_iovlen;
		}
		got = copy_iov(s, iov, iovcnt, want);
	}
	s->ev.cap = got;
	if ((__u64)ret > got && !(s->ev.flags & OSP_F_SENDFILE)) {
		s->ev.flags |= OSP_F_TRUNCATED;
		count(OSP_C_TRUNCATED);
	}
	return got;
}

/*
 * One data call's event: a socket call's payload at sys_exit (d->socket = 1), or the plaintext
 * of a TLS connection from a uprobe (d->socket = 0, op CALL_RECV/CALL_SEND, buf its buffer).
 * Both go through the same gate and HTTP/1 summariser. A global function: the socket path
 * (sys_exit) and the three plaintext uprobes each check it once, on its own.
 */
__noinline int data_out(struct conn *c, const struct data_call *d)
{
	if (!c || !d)
		return 0;
	__u32 op = d->op;
	int fd = d->fd;
	long ret = d->ret;
	int send = call_sends(op);
	struct scratch *s = event_start(send ? OSP_OP_SEND : OSP_OP_RECV, c, fd, d->ts);
	if (!s)
		return 0;
	s->ev.bytes = ret;

	/* HTTP/2: the call's frames without DATA payloads (lib/h2.h), not a prefix */
	if (c->h2 && c->state == CONN_TRACKED && op != CALL_SENDFILE) {
		h2_call(c, s, d, send, 0);
		event_submit(s);
		return 0;
	}

	__u32 got = data_copy(s, d);
	if (got > OSP_MAX_CAPTURE)
		return 0; /* never: data_copy copies at most that */

	/* a TLS connection: from now on its plaintext comes from uprobes, if any is attached */
	if (d->socket && c->state == CONN_UNKNOWN) {
		int tv = tls_record(s->data, got);
		if (tv == GATE_YES) {
			c->tls = 1;
			count(OSP_C_TLS_CONNS);
			tls_socket_call(c, fd, send);
			return 0;
		}
		if (tv == GATE_MORE)
			return 0; /* a short first read: the next call tells */
	}
	if (!d->socket)
		count(OSP_C_TLS_PLAINTEXT);

	/*
	 * HTTP/2 starts with the client's preface: prior knowledge (the connection's first bytes,
	 * or right after the server's own SETTINGS), or after an HTTP/1 Upgrade's 101 (a tracked
	 * connection whose call starts with it). From there on its frames are walked.
	 */
	if (c->state != CONN_IGNORED && !c->h2 && got >= H2_PREFACE_LEN && h2_is_preface(s->data, got)) {
		if (c->state == CONN_UNKNOWN)
			count(OSP_C_CONN_TRACKED);
		c->state = CONN_TRACKED;
		c->h2 = 1;
		c->hx = HX_RAW;
		h2_call(c, s, d, send, H2_PREFACE_LEN);
		event_submit(s);
		return 0;
	}
	if (c->state == CONN_UNKNOWN && got && send && c->role == OSP_ROLE_SERVER &&
	    h2_server_settings(s->data, got, ret)) {
		/* a server's SETTINGS: decided by the client's preface, next (the event goes as is) */
		event_submit(s);
		return 0;
	}

	/* the protocol gate runs on the first payload bytes of the connection */
	if (c->state == CONN_UNKNOWN && got) {
		int v = gate_check(s->data, got);
		if (v == GATE_YES) {
			c->state = CONN_TRACKED;
			count(OSP_C_CONN_TRACKED);
			if (c->role == OSP_ROLE_UNKNOWN) {
				/*
				 * a connection from before the capture (no accept or connect seen): its
				 * first HTTP message tells the side. The runtime context follows the role
				 * (Node's unit of a server connection is the connection), so this call's
				 * is asked again. Still not summarised in the kernel (c->preexisting).
				 */
				int response = s->data[0] == 'H' && s->data[1] == 'T';
				c->role = response == send ? OSP_ROLE_SERVER : OSP_ROLE_CLIENT;
				s->ev.role = c->role;
				s->ev.rtx = runtime_ctx(bpf_get_current_pid_tgid(), s->ev.op, c);
			}
		} else if (v == GATE_NO) {
			c->state = CONN_IGNORED;
			s->ev.flags |= OSP_F_IGNORED;
			count(OSP_C_CONN_IGNORED);
		}
	}
	if (c->state == CONN_TRACKED) {
		if (!hx_step(c, s, send, ret, got))
			return 0;
		/* a call the kernel does not summarise: the parser finds its request's start */
		if (summarize != HX_MODE_OFF && send && c->role == OSP_ROLE_CLIENT && c->hx == HX_RAW)
			hx_raw_call(s);
	} else if (c->hx == HX_NEW) {
		/* raw bytes went out before the gate decided: summarising would start mid-stream */
		c->hx = HX_RAW;
	}
	event_submit(s);
	return 0;
}

static __always_inline int enter_accept(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (traced(tgid))
		stash(CALL_ACCEPT, -1, 0, 0);
	return 0;
}

static __always_inline int enter_data(__u32 kind, int fd, __u64 buf, __u32 iovcnt)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!traced(tgid))
		return 0;
	struct fd_key k = { .tgid = tgid, .fd = fd };
	struct conn *c = bpf_map_lookup_elem(&conns, &k);
	if (!c) {
		if (bpf_map_lookup_elem(&not_tcp, &k))
			return 0;
		/* first sight of this fd: a connection from before attach, or not TCP */
		struct sock *sk = tcp_sock_of_fd(fd);
		if (!sk) {
			__u8 one = 1;
			bpf_map_update_elem(&not_tcp, &k, &one, BPF_ANY);
			return 0;
		}
		c = conn_new(&k, sk, OSP_ROLE_UNKNOWN, 1);
		if (!c)
			return 0;
	}
	if (c->state == CONN_IGNORED)
		return 0;
	stash(kind, fd, buf, iovcnt);
	return 0;
}

/*
 * accept() or connect() succeeded on fd: the new connection's state and its event. A global
 * function: its struct conn on the stack is not added to the data path's stack (the 512 bytes
 * count the deepest call chain).
 */
__noinline int conn_opened(__u32 tgid, __s32 fd, __u32 accepted, __u64 ts)
{
	struct fd_key k = { .tgid = tgid, .fd = fd };
	struct sock *sk = tcp_sock_of_fd(fd);
	if (!sk)
		return 0;
	struct conn *c = conn_new(&k, sk, accepted ? OSP_ROLE_SERVER : OSP_ROLE_CLIENT, 0);
	if (!c)
		return 0;
	__u32 op = accepted ? OSP_OP_ACCEPT : OSP_OP_CONNECT;
	/*
	 * In summarize mode the opening is not sent: every event carries the connection (tuple,
	 * role, namespace, process), so user space opens it at its first event, and a connection
	 * that never gets one (a TCP health check, a non-HTTP peer) costs it nothing at all, not
	 * even its close (close_fd). With a new connection per request that is 2 of 9 records. The
	 * runtime context is still asked: Node's notes the unit that opened a client connection
	 * (lib/nodectx.h).
	 */
	if (summarize == HX_MODE_ON) {
		runtime_ctx(bpf_get_current_pid_tgid(), op, c);
		return 0;
	}
	struct scratch *s = event_start(op, c, fd, ts);
	if (s)
		event_submit(s);
	return 0;
}

static __always_inline int exit_call(long ret)
{
	struct inflight *p = inflight_slot(0);
	if (!p || !p->op)
		return 0;
	struct inflight in = *p;
	p->op = 0;
	__u64 id = bpf_get_current_pid_tgid();

	if (in.op == CALL_ACCEPT) {
		if (ret < 0)
			return 0;
		return conn_opened(id >> 32, ret, 1, in.ts);
	}
	if (in.op == CALL_CONNECT) {
		if (ret != 0 && ret != -EINPROGRESS)
			return 0;
		return conn_opened(id >> 32, in.fd, 0, in.ts);
	}

	if (ret <= 0)
		return 0;
	struct fd_key k = { .tgid = id >> 32, .fd = in.fd };
	struct conn *c = bpf_map_lookup_elem(&conns, &k);
	if (!c || c->state == CONN_IGNORED)
		return 0;
	if (c->tls) {
		/* ciphertext: only its plaintext is reported (lib/tls.h) */
		tls_socket_call(c, in.fd, call_sends(in.op));
		return 0;
	}
	struct data_call d = { .buf = in.buf, .ts = in.ts, .ret = ret, .fd = in.fd, .op = in.op,
			       .iovcnt = in.iovcnt, .socket = 1 };
	return data_out(c, &d);
}

static __always_inline int close_fd(__u32 tgid, int fd, __u64 conn_id, __u8 flags)
{
	struct fd_key k = { .tgid = tgid, .fd = fd };
	struct conn *c = bpf_map_lookup_elem(&conns, &k);
	if (!c) {
		/* most closed fds are in neither map (files): a look-up takes no bucket lock */
		if (bpf_map_lookup_elem(&not_tcp, &k))
			bpf_map_delete_elem(&not_tcp, &k);
		return 0;
	}
	if (conn_id && c->id != conn_id)
		return 0;
	/*
	 * nothing to close in user space for a TLS connection whose plaintext was never seen, nor
	 * for one it never heard of (see conn_opened); hx_close sends nothing for one either
	 */
	if (c->state != CONN_IGNORED && !(c->tls && c->state == CONN_UNKNOWN) && c->told) {
		hx_close(c);
		struct scratch *s = event_start(OSP_OP_CLOSE, c, fd, bpf_ktime_get_ns());
		if (s) {
			s->ev.flags |= flags;
			if (flags & OSP_F_KERNEL_CLOSE) {
				/* not in the owner's context: report the owner, not current */
				s->ev.pid = tgid;
				s->ev.tid = 0;
				s->ev.rtx = 0;
			}
			event_submit(s);
		}
	}
	bpf_map_delete_elem(&socks, &c->sk);
	bpf_map_delete_elem(&conns, &k);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_accept")
int osp_enter_accept(struct trace_event_raw_sys_enter *ctx)
{
	return enter_accept();
}

SEC("tracepoint/syscalls/sys_enter_accept4")
int osp_enter_accept4(struct trace_event_raw_sys_enter *ctx)
{
	return enter_accept();
}

SEC("tracepoint/syscalls/sys_enter_connect")
int osp_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (traced(tgid))
		stash(CALL_CONNECT, ctx->args[0], 0, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_read")
int osp_enter_read(struct trace_event_raw_sys_enter *ctx)
{
	return enter_data(CALL_RECV, ctx->args[0], ctx->args[1], 0);
}

/*
 * MSG_PEEK reads bytes without consuming them (curl peeks one byte to see whether a pooled
 * connection is still alive, nginx to tell TLS from plaintext): the same bytes come again in
 * the read that consumes them, so a peek is no part of the byte stream and is not seen at all.
 */
#define OSP_MSG_PEEK 0x2

SEC("tracepoint/syscalls/sys_enter_recvfrom")
int osp_enter_recvfrom(struct trace_event_raw_sys_enter *ctx)
{
	if (ctx->args[3] & OSP_MSG_PEEK)
		return 0;
	return enter_data(CALL_RECV, ctx->args[0], ctx->args[1], 0);
}

SEC("tracepoint/syscalls/sys_enter_write")
int osp_enter_write(struct trace_event_raw_sys_enter *ctx)
{
	return enter_data(CALL_SEND, ctx->args[0], ctx->args[1], 0);
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int osp_enter_sendto(struct trace_event_raw_sys_enter *ctx)
{
	return enter_data(CALL_SEND, ctx->args[0], ctx->args[1], 0);
}

SEC("tracepoint/syscalls/sys_enter_readv")
int osp_enter_readv(struct trace_event_raw_sys_enter *ctx)
{
	return enter_data(CALL_RECVV, ctx->args[0], ctx->args[1], ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_writev")
int osp_enter_writev(struct trace_event_raw_sys_enter *ctx)
{
	return enter_data(CALL_SENDV, ctx->args[0], ctx->args[1], ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_recvmsg")
int osp_enter_recvmsg(struct trace_event_raw_sys_enter *ctx)
{
	if (ctx->args[2] & OSP_MSG_PEEK)
		return 0;
	return enter_data(CALL_RECVMSG, ctx->args[0], ctx->args[1], 0);
}

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int osp_enter_sendmsg(struct trace_event_raw_sys_enter *ctx)
{
	return enter_data(CALL_SENDMSG, ctx->args[0], ctx->args[1], 0);
}

SEC("tracepoint/syscalls/sys_enter_sendfile64")
int osp_enter_sendfile64(struct trace_event_raw_sys_enter *ctx)
{
	return enter_data(CALL_SENDFILE, ctx->args[0], 0, 0);
}

/*
 * Every sys_exit_* above lands in ONE program, osp_exit_call, by a tail call: the verifier
 * checks the shared exit path once per load instead of once per syscall (twelve times), which
 * was most of Capture.open's time. A tail call with a constant index is a direct jump once
 * JITed. The sys_exit records all have the same layout (struct trace_event_raw_sys_exit).
 * osp_exit_call's section has no target: it is never attached itself (src/kernel/capture.ts
 * attaches the `tracepoint/...` sections).
 */
SEC("tracepoint")
int osp_exit_call(struct trace_event_raw_sys_exit *ctx)
{
	return exit_call(ctx->ret);
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32)); /* no BTF key type: a program array takes none */
	__array(values, int(struct trace_event_raw_sys_exit *));
} exit_tail SEC(".maps") = {
	.values = { [0] = (void *)&osp_exit_call },
};

/*
 * The tail call fails only while exit_tail is empty: libbpf fills it at load, before anything
 * is attached, and it is emptied when the capture closes its object (nothing is captured then).
 * Should it fail, the call's entry stash goes: a later exit on this thread must not take it.
 */
#define EXIT_PROG(name)                                              \
	SEC("tracepoint/syscalls/sys_exit_" #name)                   \
	int osp_exit_##name(struct trace_event_raw_sys_exit *ctx)    \
	{                                                            \
		bpf_tail_call(ctx, &exit_tail, 0);                   \
		struct inflight *p = inflight_slot(0);               \
		if (p)                                               \
			p->op = 0;                                   \
		return 0;                                            \
	}

EXIT_PROG(accept)
EXIT_PROG(accept4)
EXIT_PROG(connect)
EXIT_PROG(read)
EXIT_PROG(recvfrom)
EXIT_PROG(write)
EXIT_PROG(sendto)
EXIT_PROG(readv)
EXIT_PROG(writev)
EXIT_PROG(recvmsg)
EXIT_PROG(sendmsg)
EXIT_PROG(sendfile64)

SEC("tracepoint/syscalls/sys_enter_close")
int osp_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid == self_tgid)
		return 0;
	return close_fd(tgid, ctx->args[0], 0, 0);
}

/*
 * A socket reaching TCP_CLOSE whose fd was never closed by close(): the process
 * exited (the kernel closes fds without a syscall) or the fd went away another
 * way. Free the entry and report the close on behalf of the owner.
 */
SEC("tracepoint/sock/inet_sock_set_state")
int osp_sock_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->newstate != TCP_CLOSE || ctx->protocol != IPPROTO_TCP)
		return 0;
	__u64 sk = (__u64)ctx->skaddr;
	struct sk_owner *o = bpf_map_lookup_elem(&socks, &sk);
	if (!o)
		return 0;
	struct sk_owner own = *o;
	bpf_map_delete_elem(&socks, &sk);
	struct fd_key k = own.key;
	struct conn *c = bpf_map_lookup_elem(&conns, &k);
	if (!c || c->id != own.conn_id)
		return 0;
	count(OSP_C_KERNEL_CLOSE);
	return close_fd(k.tgid, k.fd, own.conn_id, OSP_F_KERNEL_CLOSE);
}

/*
 * The plaintext of a TLS connection, from a uprobe of any probe family: `len` bytes at `buf`
 * that the process (the current task) read from (send = 0) or wrote to (send = 1) the socket
 * `fd`, the library call having begun at `ts`. Goes through the socket path's gate and
 * summariser; nothing happens for a socket that is not a tracked TCP connection.
 */
static __always_inline int plaintext_out(int fd, int send, __u64 buf, long len, __u64 ts)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct fd_key k = { .tgid = tgid, .fd = fd };
	struct conn *c = bpf_map_lookup_elem(&conns, &k);
	if (!c || c->state == CONN_IGNORED || len <= 0)
		return 0;
	struct data_call d = { .buf = buf, .ts = ts, .ret = len, .fd = fd, .op = send ? CALL_SEND : CALL_RECV };
	return data_out(c, &d);
}

#include "lib/openssl.h"
#include "lib/gotls.h"
#include "lib/goprobes.h"
