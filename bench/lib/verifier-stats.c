// SPDX-License-Identifier: MIT
/*
 * Loads bpf/capture.bpf.o (through its skeleton) the way Capture.open does, with the verifier's
 * statistics log (level 4) for every program, and prints one JSON object: the whole load's
 * wall time and, per program, what the verifier reported (processed insns, states, its time)
 * and what the kernel keeps (verified_insns). Nothing is attached. Built and run by
 * bench/load-time.mjs (needs root).
 *
 *   verifier-stats [summarize 0|1|2] [capture_size]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "abi/events.h"
#include "abi/goctx.h" /* enums the skeleton names */
#include "abi/rtctx.h"
#include "capture.skel.h"

#define LOG_BYTES 8192
#define MAX_PROGS 128

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* "name N" in the verifier's stats line, -1 when absent */
static long stat_of(const char *log, const char *name)
{
	const char *p = strstr(log, name);
	if (!p)
		return -1;
	return strtol(p + strlen(name), NULL, 10);
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_WARN)
		return vfprintf(stderr, fmt, ap);
	return 0;
}

int main(int argc, char **argv)
{
	int summarize = argc > 1 ? atoi(argv[1]) : 1;
	int capture_size = argc > 2 ? atoi(argv[2]) : 256;
	static char logs[MAX_PROGS][LOG_BYTES];
	const char *names[MAX_PROGS];
	int n = 0;

	libbpf_set_print(quiet);
	double t0 = now_ms();
	struct capture *skel = capture__open();
	if (!skel) {
		fprintf(stderr, "open: %s\n", strerror(errno));
		return 1;
	}
	skel->rodata->self_tgid = getpid();
	skel->rodata->capture_size = capture_size;
	skel->rodata->summarize = summarize;
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, skel->obj) {
		if (n == MAX_PROGS)
			break;
		names[n] = bpf_program__name(prog);
		bpf_program__set_log_buf(prog, logs[n], LOG_BYTES);
		bpf_program__set_log_level(prog, 4);
		n++;
	}
	double t1 = now_ms();
	int err = capture__load(skel);
	double t2 = now_ms();
	if (err) {
		fprintf(stderr, "load: %s\n", strerror(-err));
		for (int i = 0; i < n; i++)
			if (logs[i][0])
				fprintf(stderr, "--- %s\n%s\n", names[i], logs[i]);
		return 1;
	}
	printf("{\"open_ms\":%.1f,\"load_ms\":%.1f,\"summarize\":%d,\"programs\":[", t1 - t0, t2 - t1, summarize);
	int i = 0;
	bpf_object__for_each_program(prog, skel->obj) {
		if (i == n)
			break;
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);
		long verified = -1;
		if (!bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len))
			verified = info.verified_insns;
		printf("%s{\"name\":\"%s\",\"processed\":%ld,\"verified_insns\":%ld,\"total_states\":%ld,"
		       "\"peak_states\":%ld,\"verify_us\":%ld,\"insns\":%zu}",
		       i ? "," : "", names[i], stat_of(logs[i], "processed "), verified,
		       stat_of(logs[i], "total_states "), stat_of(logs[i], "peak_states "),
		       stat_of(logs[i], "verification time "), bpf_program__insn_cnt(prog));
		i++;
	}
	printf("]}\n");
	capture__destroy(skel);
	return 0;
}
