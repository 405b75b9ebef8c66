/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The protocol gate: the first payload of a connection decides whether it is a
 * protocol user space parses. One table row per protocol; a connection that
 * matches none is marked ignored and costs a single map lookup from then on.
 */
#ifndef OSPREY_LIB_GATE_H
#define OSPREY_LIB_GATE_H

enum gate_verdict {
	GATE_NO = 0,
	GATE_YES = 1,
	GATE_MORE = 2, /* too few bytes to tell: decide on the next payload */
};

struct gate_prefix {
	char s[8];
	__u8 len;
};

/* HTTP/1.x: request methods and the status line; room for more protocols below */
static const struct gate_prefix gate_prefixes[] = {
	{ "GET ", 4 },     { "POST ", 5 },   { "PUT ", 4 },     { "HEAD ", 5 },
	{ "DELETE ", 7 },  { "PATCH ", 6 },  { "OPTIONS ", 8 }, { "CONNECT ", 8 },
	{ "TRACE ", 6 },   { "HTTP/1.", 7 },
};

#define GATE_PREFIXES (sizeof(gate_prefixes) / sizeof(gate_prefixes[0]))

static __always_inline int gate_check(const __u8 *p, __u32 n)
{
	int verdict = GATE_NO;
#pragma unroll
	for (int i = 0; i < GATE_PREFIXES; i++) {
		__u8 len = gate_prefixes[i].len;
		int ok = 1;
#pragma unroll
		for (int j = 0; j < 8; j++) {
			if (j >= len || j >= n)
				break;
			if (p[j] != (__u8)gate_prefixes[i].s[j]) {
				ok = 0;
				break;
			}
		}
		if (!ok)
			continue;
		if (n >= len)
			return GATE_YES;
		verdict = GATE_MORE;
	}
	return verdict;
}

#endif
