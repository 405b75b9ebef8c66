/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The OpenSSL API (libssl.so, and binaries that carry OpenSSL or BoringSSL themselves, like
 * Node): uprobes at the entry of SSL_read/SSL_write (ssl, buf, num) and their _ex variants
 * (ssl, buf, num, size_t *len), one uretprobe for all of them (the return value, or *len for
 * _ex when it returned 1), and SSL_do_handshake / SSL_free for the session bookkeeping of
 * lib/tls.h. Attached per file by user space (src/agent/tls), never automatically: the
 * sections carry no target.
 */
#ifndef OSPREY_LIB_OPENSSL_H
#define OSPREY_LIB_OPENSSL_H

static __always_inline int ssl_enter(__u64 ssl, __u64 buf, __u64 lenp, __u8 kind)
{
	if (!traced(bpf_get_current_pid_tgid() >> 32))
		return 0;
	tls_call_enter(ssl, buf, lenp, kind);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(osp_ssl_read, void *ssl, void *buf, int num)
{
	return ssl_enter((__u64)ssl, (__u64)buf, 0, TLS_CALL_READ);
}

SEC("uprobe")
int BPF_KPROBE(osp_ssl_read_ex, void *ssl, void *buf, __u64 num, void *readbytes)
{
	return ssl_enter((__u64)ssl, (__u64)buf, (__u64)readbytes, TLS_CALL_READ);
}

SEC("uprobe")
int BPF_KPROBE(osp_ssl_write, void *ssl, const void *buf, int num)
{
	return ssl_enter((__u64)ssl, (__u64)buf, 0, TLS_CALL_WRITE);
}

SEC("uprobe")
int BPF_KPROBE(osp_ssl_write_ex, void *ssl, const void *buf, __u64 num, void *written)
{
	return ssl_enter((__u64)ssl, (__u64)buf, (__u64)written, TLS_CALL_WRITE);
}

SEC("uprobe")
int BPF_KPROBE(osp_ssl_do_handshake, void *ssl)
{
	return ssl_enter((__u64)ssl, 0, 0, TLS_CALL_HANDSHAKE);
}

SEC("uprobe")
int BPF_KPROBE(osp_ssl_free, void *ssl)
{
	if (ssl)
		tls_session_free((__u64)ssl);
	return 0;
}

/* the return of any of the calls above but SSL_free: the plaintext goes out for its socket */
SEC("uretprobe")
int BPF_KRETPROBE(osp_ssl_ret, long ret)
{
	struct tls_call call;
	if (!tls_call_exit(&call) || call.kind == TLS_CALL_HANDSHAKE)
		return 0;
	/* every function probed returns an int: the upper half of the register is not part of it */
	long len = (int)ret;
	if (call.lenp) {
		/* SSL_read_ex/SSL_write_ex: 1 on success, the length through the pointer */
		__u64 n = 0;
		if (len != 1 || bpf_probe_read_user(&n, sizeof(n), (void *)call.lenp))
			return 0;
		len = n;
	}
	if (len <= 0)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct tls_binding *b = tls_bound(tgid, call.session);
	if (!b) {
		count(OSP_C_TLS_UNBOUND);
		return 0;
	}
	return plaintext_out(b->fd, call.kind == TLS_CALL_WRITE, call.buf, len, call.ts);
}

#endif
