/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * TLS connections: which socket a TLS session (a library's session object, e.g. OpenSSL's
 * SSL *) writes to and reads from, so the plaintext its uprobes see joins the socket's
 * connection and goes through the same gate and HTTP/1 summariser as plain payloads.
 *
 * A connection whose first bytes are a TLS record is marked tls: its socket calls
 * (ciphertext) are never reported; only plaintext from a probe family (lib/openssl.h, ...)
 * is. A session is bound to a socket by these rules, strongest first:
 *
 * 1. firm: a socket call of a TLS connection made on the thread while it is inside a library
 *    call on the session (a socket BIO: OpenSSL reads and writes the fd itself inside
 *    SSL_read/SSL_write/SSL_do_handshake). Overrides any earlier binding (counted as a rebind
 *    when it differs: a session object reused at the same address).
 * 2. read slot (memory BIOs, e.g. Node): the runtime reads the ciphertext from the socket,
 *    feeds it to the library and, on the same thread and before reading any other socket,
 *    asks for the plaintext. Each thread keeps its last successful TLS socket read outside a
 *    library call; the first session entering a read (or handshake) call after it claims it,
 *    and is bound to that socket if it was unbound. A slot claimed by one session is never
 *    given to another.
 * 3. write slot (memory BIOs): a session that left a library call still unbound (no socket
 *    call inside) has produced ciphertext for the runtime to write: the thread's next TLS
 *    socket write outside a library call binds it.
 * Rules 2 and 3 bind only unbound sessions and never override. A binding is checked against
 * the connection's id each time it is used: a closed (or reused) fd is no binding. When no
 * rule gives a socket, the plaintext is dropped and counted (OSP_C_TLS_UNBOUND): never
 * guessed.
 */
#ifndef OSPREY_LIB_TLS_H
#define OSPREY_LIB_TLS_H

enum tls_call_kind {
	TLS_CALL_READ = 1,
	TLS_CALL_WRITE = 2,
	TLS_CALL_HANDSHAKE = 3,
};

/* a library call in progress on a thread, from its uprobe to its uretprobe */
struct tls_call {
	__u64 session; /* the library's session object (SSL *) */
	__u64 buf;
	__u64 lenp; /* where the _ex variants return the length (0: the return value is it) */
	__u64 ts;
	__u8 kind; /* enum tls_call_kind */
	__u8 socket_seen; /* a socket call happened inside: the session is bound firmly */
	__u16 depth; /* library calls nested on the thread (only the outermost one counts) */
	__u32 _pad;
};

struct tls_session_key {
	__u64 session;
	__u32 tgid;
	__u32 _pad;
};

struct tls_binding {
	__u64 conn_id;
	__s32 fd;
	__u8 firm;
	__u8 _pad[3];
};

/* a thread's socket calls outside library calls (rules 2 and 3) */
struct tls_thread {
	__u64 read_conn; /* last successful TLS socket read: its connection id (0: none) */
	__u64 read_claimed; /* the session that claimed it (0: unclaimed) */
	__u64 write_pending; /* an unbound session waiting for the thread's next socket write */
	__s32 read_fd;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct tls_call);
} tls_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tls_session_key);
	__type(value, struct tls_binding);
} tls_sessions SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct tls_thread);
} tls_threads SEC(".maps");

/*
 * A TLS record header (change_cipher_spec, alert, handshake or application data, version
 * 3.x): GATE_YES, GATE_NO, or GATE_MORE when the bytes so far fit one (nginx peeks at a
 * single byte before it decides between TLS and plain HTTP on a port).
 */
static __always_inline int tls_record(const __u8 *p, __u32 n)
{
	if (n == 0 || p[0] < 0x14 || p[0] > 0x17)
		return GATE_NO;
	if (n < 2)
		return GATE_MORE;
	if (p[1] != 0x03)
		return GATE_NO;
	if (n < 3)
		return GATE_MORE;
	return p[2] <= 0x04 ? GATE_YES : GATE_NO;
}

/* the session's valid binding (its connection still open on that fd), or NULL */
static __always_inline struct tls_binding *tls_bound(__u32 tgid, __u64 session)
{
	struct tls_session_key k = { .session = session, .tgid = tgid };
	struct tls_binding *b = bpf_map_lookup_elem(&tls_sessions, &k);
	if (!b)
		return NULL;
	struct fd_key fk = { .tgid = tgid, .fd = b->fd };
	struct conn *c = bpf_map_lookup_elem(&conns, &fk);
	if (!c || c->id != b->conn_id) {
		bpf_map_delete_elem(&tls_sessions, &k);
		return NULL;
	}
	return b;
}

static __always_inline void tls_bind(__u32 tgid, __u64 session, int fd, __u64 conn_id, __u8 firm)
{
	struct tls_binding *old = tls_bound(tgid, session);
	if (old) {
		if (old->fd == fd && old->conn_id == conn_id) {
			old->firm |= firm;
			return;
		}
		if (!firm)
			return;
		count(OSP_C_TLS_REBIND);
	}
	struct tls_session_key k = { .session = session, .tgid = tgid };
	struct tls_binding b = { .conn_id = conn_id, .fd = fd, .firm = firm };
	bpf_map_update_elem(&tls_sessions, &k, &b, BPF_ANY);
}

/* a successful socket call of a TLS connection (ciphertext): binds sessions, reports nothing */
static __always_inline void tls_socket_call(struct conn *c, int fd, int send)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	count(OSP_C_TLS_CIPHER);
	struct tls_call *call = bpf_map_lookup_elem(&tls_calls, &id);
	if (call) {
		call->socket_seen = 1;
		tls_bind(tgid, call->session, fd, c->id, 1);
		return;
	}
	struct tls_thread *th = bpf_map_lookup_elem(&tls_threads, &id);
	if (!th) {
		struct tls_thread z = {};
		bpf_map_update_elem(&tls_threads, &id, &z, BPF_NOEXIST);
		th = bpf_map_lookup_elem(&tls_threads, &id);
		if (!th)
			return;
	}
	if (send) {
		if (th->write_pending) {
			tls_bind(tgid, th->write_pending, fd, c->id, 0);
			th->write_pending = 0;
		}
		return;
	}
	th->read_conn = c->id;
	th->read_fd = fd;
	th->read_claimed = 0;
}

/* a library call on a session begins (uprobe at its entry) */
static __always_inline void tls_call_enter(__u64 session, __u64 buf, __u64 lenp, __u8 kind)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct tls_call *cur = bpf_map_lookup_elem(&tls_calls, &id);
	if (cur) {
		/* called from inside another library call: the outer one owns the thread */
		cur->depth++;
		return;
	}
	struct tls_call in = { .session = session, .buf = buf, .lenp = lenp, .ts = bpf_ktime_get_ns(), .kind = kind, .depth = 1 };
	if (bpf_map_update_elem(&tls_calls, &id, &in, BPF_ANY)) {
		count(OSP_C_INFLIGHT_FULL);
		return;
	}
	if (kind == TLS_CALL_WRITE)
		return;
	/* rule 2: the thread's last socket read goes to the first session reading after it */
	struct tls_thread *th = bpf_map_lookup_elem(&tls_threads, &id);
	if (!th || !th->read_conn || th->read_claimed)
		return;
	th->read_claimed = session;
	if (!tls_bound(tgid, session))
		tls_bind(tgid, session, th->read_fd, th->read_conn, 0);
}

/*
 * A library call returns: the finished call (taken out of tls_calls) into *out, 1 when it is
 * the outermost one. Sessions still unbound wait for the thread's next socket write (rule 3).
 */
static __always_inline int tls_call_exit(struct tls_call *out)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call *cur = bpf_map_lookup_elem(&tls_calls, &id);
	if (!cur)
		return 0;
	if (cur->depth > 1) {
		cur->depth--;
		return 0;
	}
	*out = *cur;
	bpf_map_delete_elem(&tls_calls, &id);
	if (!out->socket_seen && !tls_bound(id >> 32, out->session)) {
		struct tls_thread z = {};
		bpf_map_update_elem(&tls_threads, &id, &z, BPF_NOEXIST);
		struct tls_thread *th = bpf_map_lookup_elem(&tls_threads, &id);
		if (th)
			th->write_pending = out->session;
	}
	return 1;
}

/* the library freed a session: its address may come back for another connection */
static __always_inline void tls_session_free(__u64 session)
{
	struct tls_session_key k = { .session = session, .tgid = bpf_get_current_pid_tgid() >> 32 };
	bpf_map_delete_elem(&tls_sessions, &k);
}

#endif
