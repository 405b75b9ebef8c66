/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * HTTP/2 in the kernel: recognise it, then ship each call's frames without their DATA payloads.
 *
 * HPACK (the header compression of HTTP/2) keeps a table per direction that every header block
 * updates, so user space must see EVERY header block whole, wherever it lies in a call; a fixed
 * prefix of each call loses the ones after a large DATA frame. Bodies, on the other hand, are
 * never needed. So for an HTTP/2 connection the kernel keeps a frame cursor per direction (the
 * type of the frame under way, its payload bytes still to come, a header split across calls)
 * and walks the frames of every call: frame headers and the payloads of non-DATA frames are
 * copied into the event, DATA payloads are skipped. The event's payload is therefore the
 * direction's byte stream with the DATA payloads cut out ("compact"); `bytes` stays the call's
 * real length. User space (src/agent/protocols/http2.ts) reads the same frames from it.
 *
 * The cursor is exact because it sees every call of the connection from the preface on (frames
 * start right after it). Where a call has more frames than the walk's steps, or more non-DATA
 * bytes than an event holds (OSP_MAX_CAPTURE), the cursor is lost: the connection is marked
 * ignored (user space is told with OSP_F_IGNORED and closes its state) and OSP_C_H2_LOST counts it.
 */
#ifndef OSPREY_LIB_H2_H
#define OSPREY_LIB_H2_H

#define H2_PREFACE_LEN 24
#define H2_FRAME_HDR 9
#define H2_DATA 0
#define H2_SETTINGS 4
/* steps of one walk: a frame takes two (header, payload), an iovec boundary one */
#define H2_MAX_STEPS 1024

/* the client connection preface (RFC 9113 3.4) */
static __always_inline int h2_is_preface(const __u8 *p, __u32 n)
{
	static const char pre[H2_PREFACE_LEN + 1] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	if (n < H2_PREFACE_LEN)
		return 0;
#pragma unroll
	for (int i = 0; i < H2_PREFACE_LEN; i++)
		if (p[i] != (__u8)pre[i])
			return 0;
	return 1;
}

/*
 * A server speaks first in HTTP/2: its SETTINGS frame (often with a WINDOW_UPDATE) goes out before
 * it reads the client's preface. A first write that is whole frames starting with a SETTINGS frame
 * on stream 0 keeps the gate open for the preface to come (and the cursor starts aligned).
 */
static __always_inline int h2_server_settings(const __u8 *p, __u32 got, long ret)
{
	if ((long)got != ret || got < H2_FRAME_HDR)
		return 0;
	if (p[3] != H2_SETTINGS || p[4] != 0 || p[5] || p[6] || p[7] || p[8])
		return 0;
	/* at most four frames, each whole in the call */
	__u32 off = 0;
	int ok = 0;
#pragma unroll
	for (int k = 0; k < 4; k++) {
		__u32 o = off & (OSP_MAX_CAPTURE - 1);
		__u32 len = ((__u32)p[o] << 16) | ((__u32)p[o + 1] << 8) | p[o + 2];
		if (!ok && off + H2_FRAME_HDR <= got) {
			off += H2_FRAME_HDR + len;
			ok = off == got;
		}
	}
	return ok;
}

/* one walk over a call's bytes (the bpf_loop context) */
struct h2_walk {
	__u64 base;    /* current segment: user address, length, offset walked */
	__u64 len;
	__u64 seg_off;
	__u64 iov;     /* the iovec array, 0 for a flat buffer */
	__u64 todo;    /* bytes of the call not walked yet */
	__u32 iv_i;
	__u32 iv_n;
	__u32 out;     /* bytes written to the event payload */
	__u32 left;    /* cursor: payload bytes of the current frame still to come */
	__u8 type;     /* cursor: its type */
	__u8 hdr_n;    /* cursor: bytes of a frame header seen */
	__u8 lost;
	__u8 _pad;
	__u8 hdr[32];  /* the header being read (9 used; room for the masked offset) */
};

/* copy n bytes at src (user memory) to the event payload */
static __always_inline int h2_copy(struct scratch *s, struct h2_walk *w, const void *src, __u64 n)
{
	if (w->out + n > OSP_MAX_CAPTURE) {
		w->lost = 1;
		return 1;
	}
	__u32 o = w->out & (OSP_MAX_CAPTURE - 1);
	__u32 m = n;
	if (m > OSP_MAX_CAPTURE)
		m = OSP_MAX_CAPTURE;
	if (m && bpf_probe_read_user(&s->data[o], m, src)) {
		count(OSP_C_READ_FAULT);
		w->lost = 1;
		return 1;
	}
	w->out += m;
	return 0;
}

/* one step: move to the next iovec, or consume a frame header's bytes, or a payload's */
static long h2_step(__u32 i, struct h2_walk *w)
{
	if (w->todo == 0)
		return 1;
	if (w->seg_off >= w->len) {
		if (!w->iov || w->iv_i >= w->iv_n) {
			w->lost = 1;
			return 1;
		}
		struct iovec v = {};
		if (bpf_probe_read_user(&v, sizeof(v), (void *)(w->iov + (__u64)w->iv_i * sizeof(struct iovec)))) {
			w->lost = 1;
			return 1;
		}
		w->iv_i++;
		w->base = (__u64)v.iov_base;
		w->len = v.iov_len;
		w->seg_off = 0;
		return 0;
	}
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s) {
		w->lost = 1;
		return 1;
	}
	__u64 avail = w->len - w->seg_off;
	if (avail > w->todo)
		avail = w->todo;
	const void *src = (const void *)(w->base + w->seg_off);
	__u64 n;
	if (w->left) {
		/* payload: a DATA frame's is skipped, every other frame's is copied */
		n = w->left < avail ? w->left : avail;
		if (w->type != H2_DATA && h2_copy(s, w, src, n))
			return 1;
		w->left -= n;
	} else {
		/* a frame header, maybe split across segments or calls */
		__u32 at = w->hdr_n & 15;
		n = H2_FRAME_HDR - (w->hdr_n > H2_FRAME_HDR ? H2_FRAME_HDR : w->hdr_n);
		if (n > avail)
			n = avail;
		if (n > H2_FRAME_HDR)
			n = H2_FRAME_HDR;
		if (n == 0 || bpf_probe_read_user(&w->hdr[at], n, src) || h2_copy(s, w, src, n)) {
			w->lost = 1;
			return 1;
		}
		w->hdr_n += n;
		if (w->hdr_n >= H2_FRAME_HDR) {
			w->left = ((__u32)w->hdr[0] << 16) | ((__u32)w->hdr[1] << 8) | w->hdr[2];
			w->type = w->hdr[3];
			w->hdr_n = 0;
		}
	}
	w->seg_off += n;
	w->todo -= n;
	return 0;
}

/*
 * The cursor of a direction into a walk (h2_load) and back (h2_store) around the bpf_loop over
 * the call (bpf_loop wants its context on the caller's stack: the loop runs in the caller).
 * `skip` bytes at the start are already in the payload (the preface): walked like a DATA payload.
 */
__noinline int h2_load(struct conn *c, struct h2_walk *w, int send)
{
	if (!c || !w)
		return -1;
	int d = send ? 1 : 0;
	if (w->left) {
		w->type = H2_DATA;
	} else {
		w->left = c->h2_left[d];
		w->type = c->h2_type[d];
		w->hdr_n = c->h2_hdr_n[d];
		__builtin_memcpy(w->hdr, c->h2_hdr[d], 16);
	}
	return 0;
}

__noinline int h2_store(struct conn *c, struct h2_walk *w, int send)
{
	if (!c || !w || w->lost || w->todo)
		return -1;
	int d = send ? 1 : 0;
	c->h2_left[d] = w->left;
	c->h2_type[d] = w->type;
	c->h2_hdr_n[d] = w->hdr_n;
	__builtin_memcpy(c->h2_hdr[d], w->hdr, 16);
	return 0;
}

#endif
