// The TS face of bpf/abi/rtctx.h: rt_procs lists the processes whose calls ask a runtime for
// their context (bpf/lib/rtctx.h), tgid -> RtBit bits (checked against the object's BTF in
// abi.test.ts). User space writes the Go bit (src/agent/golang/runtime-probes.ts); the kernel
// sets the Node bit itself.

export const RT_PROCS_MAP = 'rt_procs';
export const RT_PROCS = 16384;

/** enum osp_rt */
export const RtBit = { go: 1, node: 2 } as const;
