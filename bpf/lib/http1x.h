/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * HTTP/1 exchanges summarised in the kernel (summarize mode).
 *
 * Per connection, the kernel follows the simple, common shape of an exchange: a request head
 * that fits in the first HX_HEAD bytes of its first call, a body framed by Content-Length (or
 * none), then a response head in one call with Content-Length (or no body: HEAD, 204, 304).
 * While it does, no call of the exchange reaches user space; when the response's last byte
 * has gone, ONE record (OSP_OP_EXCHANGE) carries what user space needs: times, threads, sizes,
 * the status and the request head's first bytes. The calls' timing follows the user-space
 * parser's rules (a written message starts at the entry of its first write, a read one at
 * the exit of its first read; every message ends at the exit of its last call), so a span
 * built from the record is the span the parser would have built.
 *
 * Anything else - chunked or EOF-framed bodies, heads longer than HX_HEAD, 1xx, upgrades,
 * pipelining, more bytes than framed, a close in the middle - makes the connection fall back
 * to raw events for good: the calls held back so far are sent first, exactly as they would
 * have been (the request head's event as it was, the folded body calls as one event with
 * their byte count and no payload), so the user-space parser sees an unbroken stream.
 *
 * Shadow mode (for the equivalence test): the folded calls are sent anyway, flagged
 * OSP_F_SHADOW, and the re-sent ones are flagged OSP_F_REPLAY, so one capture carries both
 * the raw stream and the summarised one, with the very same timestamps.
 */
#ifndef OSPREY_LIB_HTTP1X_H
#define OSPREY_LIB_HTTP1X_H

enum hx_state {
	HX_NEW = 0,  /* no payload yet */
	HX_IDLE = 1, /* between exchanges */
	HX_REQ = 2,  /* request head seen, response not yet */
	HX_RESP = 3, /* response head seen, body under way */
	HX_RAW = 4,  /* summarising stopped: raw events */
};

struct head_info {
	__u32 end;  /* offset just past CRLFCRLF, 0 when not within the bytes */
	__u32 cl_at; /* offset of the Content-Length value, 0 when none */
	__u8 te;    /* a Transfer-Encoding header is present */
};

#define LOWER(c) ((c) | 0x20)

/* "content-length:" / "transfer-encoding:" at p[h], case-insensitively */
static __always_inline int hdr_is(const __u8 *p, __u32 h, const char *name, __u32 len)
{
#pragma unroll
	for (__u32 k = 0; k < 18; k++) {
		if (k >= len)
			break;
		__u8 want = name[k];
		__u8 got = p[(h + k) & (2 * HX_HEAD - 1)];
		if (want == ':' || want == '-' ? got != want : LOWER(got) != want)
			return 0;
	}
	return 1;
}

struct scan_ctx {
	__u32 n;
	struct head_info hi;
};

#define HX_CR8 0x0d0d0d0d0d0d0d0dULL
#define HX_ONES8 0x0101010101010101ULL
#define HX_HIGH8 0x8080808080808080ULL

/*
 * One step of the head scan, run by bpf_loop: from s->scan_pos to the next CR, searched eight bytes
 * at a time (a word with no CR costs a few instructions instead of eight rounds of the loop),
 * then the checks at that CR: the end of the head, or a framing header on the next line. A
 * head is a few lines, so the loop runs about (lines + bytes / 32) times, not once per byte.
 * The bytes are the current call's payload in the per-CPU event scratch; bytes past n are an
 * earlier call's, and a CR found there is past the end (as it would be byte by byte).
 */
static long scan_one(__u32 idx, struct scan_ctx *x)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 1;
	const __u8 *p = s->data;
	__u32 i = s->scan_pos;
	if (i >= HX_HEAD || i + 3 >= x->n)
		return 1;
	__u32 cr = HX_HEAD;
#pragma unroll
	for (__u32 w = 0; w < 4; w++) {
		__u32 at = i + 8 * w;
		if (at >= HX_HEAD)
			break;
		__u64 t = *(const __u64 *)&p[at] ^ HX_CR8;
		/* the lowest byte of t that is zero (a CR) is exact; bits above it may be borrows */
		__u64 m = (t - HX_ONES8) & ~t & HX_HIGH8;
		if (m) {
			__u64 b = m & -m;
			__u32 k = 0;
			if (b >> 32) {
				k += 4;
				b >>= 32;
			}
			if (b >> 16) {
				k += 2;
				b >>= 16;
			}
			if (b >> 8)
				k += 1;
			cr = at + k;
			break;
		}
	}
	if (cr >= HX_HEAD) {
		s->scan_pos = i + 32; /* no CR in these 32 bytes */
		return 0;
	}
	/*
	 * through memory: what follows is checked once for any CR position, not once for each
	 * of the 32 ways (word, byte in it) the search above can end
	 */
	s->scan_pos = cr;
	i = *(volatile __u32 *)&s->scan_pos;
	if (i >= HX_HEAD || i + 3 >= x->n)
		return 1;
	s->scan_pos = i + 1;
	if (p[i + 1] != '\n')
		return 0;
	if (p[i + 2] == '\r' && p[i + 3] == '\n') {
		x->hi.end = i + 4;
		return 1;
	}
	__u32 h = i + 2;
	__u8 c0 = LOWER(p[h]);
	if (c0 == 'c' && h + 15 < x->n && hdr_is(p, h, "content-length:", 15))
		x->hi.cl_at = h + 15;
	else if (c0 == 't' && h + 18 < x->n && hdr_is(p, h, "transfer-encoding:", 18))
		x->hi.te = 1;
	return 0;
}

/* the end of the head in the current call's first n bytes, and where its framing headers are */
static __always_inline void scan_head(__u32 n, struct head_info *hi)
{
	struct scan_ctx x = { .n = n > HX_HEAD ? HX_HEAD : n };
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s) {
		hi->end = 0;
		hi->cl_at = 0;
		hi->te = 0;
		return;
	}
	s->scan_pos = 0;
	/* every step moves scan_pos on by at least one byte */
	bpf_loop(HX_HEAD - 3, scan_one, &x, 0);
	*hi = x.hi;
}

/* the Content-Length value at p[at] (optional blanks, then digits), or -1 */
static __always_inline __s64 parse_cl(const __u8 *p, __u32 at, __u32 n)
{
	__s64 v = -1;
#pragma unroll
	for (__u32 k = 0; k < 20; k++) {
		__u32 j = at + k;
		if (j >= n || j >= HX_HEAD)
			break;
		__u8 c = p[j & (2 * HX_HEAD - 1)];
		if ((c == ' ' || c == '\t') && v < 0)
			continue;
		if (c < '0' || c > '9')
			break;
		v = (v < 0 ? 0 : v * 10) + (c - '0');
	}
	return v;
}

static __always_inline int starts(const __u8 *p, const char *s, __u32 len)
{
#pragma unroll
	for (__u32 k = 0; k < 8; k++) {
		if (k >= len)
			break;
		if (p[k] != (__u8)s[k])
			return 0;
	}
	return 1;
}

/*
 * One record into the ring buffer; wake-ups are batched (user space also drains on a timer).
 *
 * Every record carries the number of records refused so far (osp_event.lost), read before it
 * is written, so user space knows where in the stream a loss happened (src/agent/linker.ts,
 * loss barrier). Why that placement is safe although records of different CPUs are not in
 * time order: the ring buffer's order is the order of reservations. A refused record bumps
 * the count right after its failed reservation, so a record that reads the count after the
 * bump carries a larger value, and user space raises the barrier no later than the first of
 * those. Every later record of the thread that lost one reads after its own bump (program
 * order, also across a migration), and so does every record of what that thread did after
 * the loss (a peer reading bytes it wrote later): the records the lost one could mislead all
 * come after the barrier. What reads the count just before a bump on another CPU is a record
 * made at the same instant as the loss, not one that depends on it. Cost: one load of a global
 * per record, an atomic add per refused one.
 */
static __always_inline void rb_out(void *rec, __u64 size)
{
	((struct osp_event *)rec)->lost = *(volatile __u64 *)&lost_records;
	__u64 flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
										      : BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&events, rec, size, flags)) {
		count(OSP_C_RB_DROPPED);
		__sync_fetch_and_add(&lost_records, 1);
	} else
		count(OSP_C_EVENTS);
}

/* the current call is folded into the exchange: not sent (or sent flagged, in shadow mode) */
static __always_inline int hx_fold(struct scratch *s)
{
	count(OSP_C_ELIDED);
	if (summarize == HX_MODE_SHADOW)
		s->ev.flags |= OSP_F_SHADOW;
	return summarize == HX_MODE_SHADOW;
}

/*
 * Take a kept head event out of its slot into this CPU's scratch slot 1. Two paths can race
 * for it (close() on one CPU, the socket's TCP_CLOSE in softirq on another): the one whose
 * compare-and-swap frees the slot owns the copy; the other gets NULL and sends nothing.
 */
static __always_inline struct hx_pend *hx_take(__u64 key)
{
	__u32 one = 1;
	struct hx_slot *sl = hx_slot_of(key);
	struct hx_pend *copy = bpf_map_lookup_elem(&hx_scratch, &one);
	if (!sl || !copy || sl->owner != key)
		return NULL;
	__builtin_memcpy(copy, &sl->p, sizeof(*copy));
	if (__sync_val_compare_and_swap(&sl->owner, key, 0) != key)
		return NULL;
	return copy;
}

/* the slot of `key` is free again (its head is no longer needed) */
static __always_inline void hx_release(__u64 key)
{
	struct hx_slot *sl = hx_slot_of(key);
	if (sl && sl->owner == key)
		__sync_val_compare_and_swap(&sl->owner, key, 0);
}

/*
 * Re-send a kept head event, then the calls of its message folded after it as one
 * bytes-only event (their first entry, the last exit, their bytes).
 */
static __always_inline void hx_resend(struct hx_pend *p, struct hx_msg *m)
{
	__u8 replay = summarize == HX_MODE_SHADOW ? OSP_F_REPLAY : 0;
	__u32 cap = p->ev.cap;
	if (cap > HX_HEAD)
		cap = HX_HEAD;
	p->ev.flags = (p->ev.flags & ~OSP_F_SHADOW) | replay;
	p->ev.size = sizeof(struct osp_event) + cap; /* kept before event_submit sized it */
	p->ev.cap = cap;
	rb_out(p, sizeof(struct osp_event) + cap);
	if (!m->body_ts)
		return;
	__u32 zero = 0;
	struct hx_out *o = bpf_map_lookup_elem(&hx_scratch, &zero);
	if (!o)
		return;
	o->ev = p->ev;
	o->ev.flags = OSP_F_ELIDED | OSP_F_TRUNCATED | replay;
	o->ev.size = sizeof(struct osp_event);
	o->ev.ts = m->body_ts;
	o->ev.ts_end = m->end;
	o->ev.bytes = m->bytes - p->ev.bytes;
	o->ev.tid = m->tid;
	o->ev.rtx = m->rtx;
	o->ev.cap = 0;
	rb_out(o, sizeof(struct osp_event));
}

/*
 * Linking hints, only when linking needs them. User space links a client call to the server
 * request its thread (or unit of work) is working on, so it must know of that request when the
 * call starts: a server request's start (HEAD) and its answer's (RESPONDED) go out as they
 * happen, and a call's start too, so that it is linked against what is in flight then. That
 * is three records per exchange more than the exchange record itself, and most processes
 * never need them: a server that calls nobody (nginx serving files, a leaf service) has no call
 * to link, and a client that serves nothing (wrk, curl, a job) has no request to link a call
 * to. Per process, the kernel knows which it has seen:
 * - `calls`: the process made an HTTP/1 call. Only then are its server requests' starts told
 *   as they happen; before, each is counted in `untold` while it is in flight (its record
 *   comes when the exchange ends, as every exchange's does);
 * - `serves`: the process served an HTTP/1 request. Only then is a call's start told as it
 *   happens; before, no request of the process can be in flight, and the call's exchange
 *   record is linked when it comes with the same result (nothing to link to). The tuple rule
 *   pairs it with its server on this host when either record comes (src/agent/linker.ts).
 * The first request of a process is told whatever its role: user space learns of the process
 * while it surely lives (it reads the process's command line and resource then; a curl or a
 * job that exits right after its last response would otherwise be gone by its first record).
 * The first call of a process flips `calls`, and the starts of its requests in flight go out
 * then (hx_flip walks the connection table once, for this process). What a race leaves untold
 * (a request whose start read `calls` just before the flip) keeps `untold` above 0 until it is
 * answered, and every start told meanwhile carries OSP_L_UNSURE: user space links no call by
 * thread or unit of work then, and takes no server request as proof. (An untold request whose
 * connection entry the conns table evicts is never discounted: that process's calls stay
 * unsure, unlinked by thread, which costs links, never a wrong one.)
 */
__noinline int hx_hint(struct hx_pend *s, __u32 op, __u64 ts, __u32 head_len, __u32 link);

enum hx_told {
	HD_NONE = 0,   /* no server request in progress, or answered */
	HD_UNTOLD = 1, /* a server request in progress whose start user space was not told */
	HD_TOLD = 2,   /* ... whose start it was told (HEAD): its answer's start goes too */
};

struct hx_proc {
	__u32 calls;
	__u32 serves;
	__s32 untold;
	__u32 _pad;
};

/*
 * Not an LRU: an entry lost while the process lives would forget that it serves (its calls'
 * starts would then go untold while requests told before are in flight). User space deletes
 * the entries of processes that exited (src/agent/agent.ts, the process sweep); when the table
 * is full, every start is told, as before the first call.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct hx_proc);
} hx_procs SEC(".maps");

/* the process's entry, made if missing (*made = 1); NULL when the table is full (then every
 * start is told) */
static __always_inline struct hx_proc *hx_proc_of(__u32 tgid, int *made)
{
	struct hx_proc *pr = bpf_map_lookup_elem(&hx_procs, &tgid);
	if (pr)
		return pr;
	*made = 1;
	struct hx_proc zero = {};
	bpf_map_update_elem(&hx_procs, &tgid, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&hx_procs, &tgid);
}

/* a server request's start is no longer untold (it was answered, or handed to the parser) */
static __always_inline void hx_settle(struct conn *c)
{
	if (c->hd == HD_UNTOLD && __sync_val_compare_and_swap(&c->hd, HD_UNTOLD, HD_NONE) == HD_UNTOLD) {
		struct hx_proc *pr = bpf_map_lookup_elem(&hx_procs, &c->tgid);
		if (pr)
			__sync_fetch_and_add(&pr->untold, -1);
	}
}

struct flip_ctx {
	__u32 tgid;
	__s32 told;
};

/* one connection of the flipping process: its request in progress, if untold, is told now */
static long hx_flip_one(struct bpf_map *map, struct fd_key *k, struct conn *c, struct flip_ctx *x)
{
	if (k->tgid != x->tgid || c->hd != HD_UNTOLD || c->hx != HX_REQ)
		return 0;
	if (__sync_val_compare_and_swap(&c->hd, HD_UNTOLD, HD_TOLD) != HD_UNTOLD)
		return 0;
	x->told++;
	/* the head call's event as it was kept (hx_keep), sent as its HEAD hint would have been */
	struct hx_slot *sl = hx_slot_of(c->id);
	if (sl && sl->owner == c->id)
		hx_hint(&sl->p, OSP_OP_HEAD, c->req.ts, c->req.head_len, 0);
	return 0;
}

/* the process's first call: from now on its server requests' starts are told, and those in
 * progress are told now (once per process: a walk of the connection table) */
__noinline int hx_flip(__u32 tgid)
{
	struct hx_proc *pr = bpf_map_lookup_elem(&hx_procs, &tgid);
	if (!pr || pr->calls || __sync_val_compare_and_swap(&pr->calls, 0, 1) != 0)
		return 0;
	struct flip_ctx x = { .tgid = tgid };
	bpf_for_each_map_elem(&conns, hx_flip_one, &x, 0);
	if (x.told)
		__sync_fetch_and_add(&pr->untold, -x.told);
	return 0;
}

/* the link note of a start told now */
static __always_inline __u32 hx_link_note(struct hx_proc *pr)
{
	return pr && pr->untold > 0 ? OSP_L_UNSURE : 0;
}

/* a request began (its head is kept, c->hx is HX_REQ): its start goes out if linking needs it */
static __always_inline void hx_began(struct conn *c, struct scratch *s, __u64 ts_first, __u32 head_len)
{
	int made = 0;
	struct hx_proc *pr = hx_proc_of(s->ev.pid, &made);
	if (c->role == OSP_ROLE_SERVER) {
		if (pr && !pr->serves)
			pr->serves = 1;
		if (pr && !pr->calls && !made) {
			/* marked before it is counted: a flip that sees the mark tells it and discounts it */
			c->hd = HD_UNTOLD;
			__sync_fetch_and_add(&pr->untold, 1);
			return;
		}
		c->hd = HD_TOLD;
	} else {
		if (pr && !pr->calls)
			hx_flip(s->ev.pid);
		if (pr && !pr->serves && !made)
			return;
	}
	hx_hint((struct hx_pend *)s, OSP_OP_HEAD, ts_first, head_len, hx_link_note(pr));
}

/* a raw (unsummarised) call of a client connection: the process calls out; the note of its start */
static __always_inline void hx_raw_call(struct scratch *s)
{
	int made = 0;
	struct hx_proc *pr = hx_proc_of(s->ev.pid, &made);
	if (pr && !pr->calls)
		hx_flip(s->ev.pid);
	s->ev.link = hx_link_note(pr);
}

/*
 * Stop summarising: what was held back goes out first, as it would have been (the request
 * head and its folded body; the response head and its folded body), then raw events.
 * hx_fallback, hx_hint and hx_emit are global functions: the verifier checks each once per
 * program, not at each site with the state it has there.
 */
__noinline int hx_fallback(struct conn *c)
{
	if (!c)
		return 0;
	__u64 id = c->id;
	__u8 st = c->hx;
	c->hx = HX_RAW;
	count(OSP_C_FALLBACK);
	/* the parser gets the request's calls now: user space knows of it from here */
	hx_settle(c);
	if (st != HX_REQ && st != HX_RESP)
		return 0;
	struct hx_pend *p = hx_take(id);
	if (p)
		hx_resend(p, &c->req);
	/* a response head is kept only while its body is under way */
	struct hx_pend *r = st == HX_RESP ? hx_take(id | (1ULL << 63)) : NULL;
	if (r)
		hx_resend(r, &c->resp);
	return 0;
}

/* a linking hint (OSP_OP_HEAD for any request, OSP_OP_RESPONDED for a server's response): a
 * call's event (the current one in the scratch, or a kept head: struct scratch starts like
 * struct hx_pend), re-labelled, with the head's bytes for HEAD and none for RESPONDED */
__noinline int hx_hint(struct hx_pend *s, __u32 op, __u64 ts, __u32 head_len, __u32 link)
{
	__u32 zero = 0;
	struct hx_out *o = bpf_map_lookup_elem(&hx_scratch, &zero);
	if (!s || !o)
		return 0;
	__u32 cap = op == OSP_OP_HEAD ? head_len : 0;
	if (cap > HX_HEAD)
		cap = HX_HEAD;
	if (cap > s->ev.cap)
		cap = s->ev.cap;
	o->ev = s->ev;
	o->ev.op = op;
	o->ev.flags = 0;
	o->ev.link = link;
	o->ev.ts = ts;
	o->ev.cap = cap;
	o->ev.size = sizeof(struct osp_event) + cap;
	/* the head bytes follow the header directly (no struct osp_exchange in a hint) */
	bpf_probe_read_kernel(&o->x, cap, s->data);
	rb_out(o, sizeof(struct osp_event) + cap);
	return 0;
}

/* the exchange is whole: one record out, the connection waits for its next request */
__noinline int hx_emit(struct conn *c)
{
	if (!c)
		return 0;
	__u64 id = c->id;
	__u64 rid = id | (1ULL << 63);
	struct hx_pend *p = hx_take(id);
	__u32 zero = 0;
	struct hx_out *o = bpf_map_lookup_elem(&hx_scratch, &zero);
	if (p && o) {
		__u32 cap = p->ev.cap;
		if (cap > HX_HEAD)
			cap = HX_HEAD;
		o->ev = p->ev;
		o->ev.op = OSP_OP_EXCHANGE;
		o->ev.flags = 0;
		o->ev.ts = c->req.ts;
		o->ev.ts_end = c->resp.end;
		o->ev.bytes = c->req.bytes;
		o->ev.tid = c->req.tid;
		o->ev.rtx = c->req.rtx;
		o->ev.cap = sizeof(struct osp_exchange) + cap;
		o->ev.size = sizeof(struct osp_event) + o->ev.cap;
		o->x.req_end = c->req.end;
		o->x.resp_ts = c->resp.ts;
		o->x.resp_bytes = c->resp.bytes;
		o->x.req_call_ts = p->ev.ts;
		o->x.req_call_ts_end = p->ev.ts_end;
		o->x.resp_tid = c->resp.tid;
		o->x.req_head_len = c->req.head_len;
		o->x.resp_head_len = c->resp.head_len;
		o->x.status = c->status;
		o->x.resp_minor = c->resp_minor;
		o->x.xflags = 0;
		o->x.resp_rtx = c->resp.rtx;
		bpf_probe_read_kernel(o->data, cap, p->data);
		rb_out(o, sizeof(struct osp_event) + sizeof(struct osp_exchange) + cap);
		count(OSP_C_EXCHANGES);
	}
	if (c->resp.body_ts) /* the response head was kept while its body went */
		hx_release(rid);
	c->hx = HX_IDLE;
	return 0;
}

/*
 * A slot held this long is taken over: its owner is gone without a close that freed it (its
 * connection state was evicted); a live exchange is not left pending that long in practice.
 */
#define HX_STALE_NS (120ULL * 1000000000ULL)

/* keep the current call's event (a head) for a possible fallback */
static __always_inline int hx_keep(__u64 key, struct scratch *s)
{
	struct hx_slot *sl = hx_slot_of(key);
	if (!sl)
		return 0;
	__u64 cur = sl->owner;
	if (cur != key) {
		/* another connection's exchange holds the slot: this one goes unsummarised */
		if ((cur && s->ev.ts - sl->p.ev.ts < HX_STALE_NS) ||
		    __sync_val_compare_and_swap(&sl->owner, cur, key) != cur) {
			count(OSP_C_PENDING_FULL);
			return 0;
		}
	}
	/* struct scratch starts like struct hx_pend: the event, then its payload */
	__builtin_memcpy(&sl->p, s, sizeof(sl->p));
	return 1;
}

/* a message's head call: where it starts, who sent it, how long its head is */
static __always_inline void msg_begin(struct hx_msg *m, struct scratch *s, __u64 ts_first, long ret, __u32 head_len)
{
	m->ts = ts_first;
	m->end = s->ev.ts_end;
	m->tid = s->ev.tid;
	m->rtx = s->ev.rtx;
	m->bytes = ret;
	m->head_len = head_len;
	m->body_ts = 0;
}

/* a later call of the message (its body), folded */
static __always_inline void msg_more(struct hx_msg *m, struct scratch *s, long ret)
{
	if (!m->body_ts)
		m->body_ts = s->ev.ts;
	m->end = s->ev.ts_end;
	m->bytes += ret;
}

enum hx_act {
	HX_FOLD = 1,     /* the call is folded into the exchange */
	HX_EMIT = 2,     /* folded, and the exchange is whole: its record goes out */
	HX_FALLBACK = 3, /* stop summarising, then send the call's raw event */
};

/* the state machine of one data call (no output: the caller acts once, which keeps the
 * verifier's work small) */
static __always_inline int hx_next(struct conn *c, struct scratch *s, int send, long ret, __u32 got)
{
	if (c->hx == HX_NEW) {
		/* a connection from before attach starts mid-stream: the parser copes, not us */
		if (c->preexisting || c->role == OSP_ROLE_UNKNOWN)
			return HX_FALLBACK;
		c->hx = HX_IDLE;
	}
	int req_dir = c->role == OSP_ROLE_SERVER ? !send : send;
	__u8 *p = s->data;
	__u64 ts_first = send ? s->ev.ts : s->ev.ts_end; /* the parser's start of a message */
	struct head_info hi;

	if (c->hx == HX_IDLE) {
		if (!req_dir || got < 16 || starts(p, "HTTP/", 5) || starts(p, "CONNECT ", 8))
			return HX_FALLBACK;
		scan_head(got, &hi);
		if (!hi.end || hi.te)
			return HX_FALLBACK;
		__s64 cl = hi.cl_at ? parse_cl(p, hi.cl_at, got) : 0;
		__s64 body = ret - hi.end;
		if (cl < 0 || body > cl || !hx_keep(c->id, s))
			return HX_FALLBACK;
		c->hx_head = starts(p, "HEAD ", 5);
		msg_begin(&c->req, s, ts_first, ret, hi.end);
		c->left = cl - body;
		c->hx = HX_REQ;
		/* its start goes out now if linking needs it (see "Linking hints") */
		hx_began(c, s, ts_first, hi.end);
		return HX_FOLD;
	}

	if (c->hx == HX_REQ) {
		if (req_dir) {
			if (ret > c->left)
				return HX_FALLBACK;
			c->left -= ret;
			msg_more(&c->req, s, ret);
			return HX_FOLD;
		}
		/* the response head: "HTTP/1.x NNN", whole in this call, framed by Content-Length */
		if (c->left != 0 || got < 16 || !starts(p, "HTTP/1.", 7) || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
			return HX_FALLBACK;
		__u32 status = 0;
#pragma unroll
		for (int k = 9; k < 12; k++) {
			if (p[k] < '0' || p[k] > '9')
				return HX_FALLBACK;
			status = status * 10 + (p[k] - '0');
		}
		/* 1xx (interim, upgrades) are the parser's job */
		if (status < 200)
			return HX_FALLBACK;
		scan_head(got, &hi);
		__s64 body = ret - hi.end;
		__s64 left = -1;
		if (c->hx_head || status == 204 || status == 304)
			left = 0;
		else if (hi.cl_at)
			left = parse_cl(p, hi.cl_at, got);
		/* chunked, until EOF, a long head: the parser frames those */
		if (!hi.end || hi.te || left < 0 || body > left)
			return HX_FALLBACK;
		/* a response whole in this call is out at once; only one whose body is still to
		 * come keeps its head for a fallback */
		if (body < left && !hx_keep(c->id | (1ULL << 63), s))
			return HX_FALLBACK;
		c->status = status;
		c->resp_minor = p[7] - '0';
		msg_begin(&c->resp, s, ts_first, ret, hi.end);
		c->left = left - body;
		c->hx = HX_RESP;
		/* the answer starts: an untold request is done with for linking (its record says when) */
		hx_settle(c);
		if (c->left == 0)
			return HX_EMIT;
		if (c->role == OSP_ROLE_SERVER && c->hd == HD_TOLD)
			hx_hint((struct hx_pend *)s, OSP_OP_RESPONDED, ts_first, 0, 0);
		return HX_FOLD;
	}

	/* HX_RESP: the response body; a request before it ended (pipelining) or more bytes
	 * than framed go to the parser */
	if (req_dir || ret > c->left)
		return HX_FALLBACK;
	c->left -= ret;
	msg_more(&c->resp, s, ret);
	return c->left == 0 ? HX_EMIT : HX_FOLD;
}

/*
 * One data call of a tracked connection: returns 1 when the raw event must be sent (as
 * today), 0 when it was folded into the exchange. A global function: the verifier checks it
 * once, on its own, instead of once per path into it (inlined into every sys_exit program it
 * made them too complex to load).
 */
__noinline int hx_step(struct conn *c, struct scratch *s, int send, long ret, __u32 got)
{
	if (!c || !s || summarize == HX_MODE_OFF || c->hx == HX_RAW)
		return 1;
	int act = hx_next(c, s, send, ret, got);
	if (act == HX_FALLBACK) {
		hx_fallback(c);
		return 1;
	}
	if (act == HX_EMIT)
		hx_emit(c);
	return hx_fold(s);
}

/* the connection closes: an exchange under way goes out as raw events for the parser */
static __always_inline void hx_close(struct conn *c)
{
	if (summarize != HX_MODE_OFF && (c->hx == HX_REQ || c->hx == HX_RESP))
		hx_fallback(c);
}

#endif
