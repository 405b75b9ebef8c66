// Checks the machine before loading anything, so a user gets one actionable line
// instead of a libbpf errno: privileges, BTF, kernel version, tracefs.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { KernelError } from './errors.js';

// capability bits (linux/capability.h); `osprey doctor` (doctor.ts) checks the same ones
export const CAP = {
  DAC_READ_SEARCH: 2,
  SYS_PTRACE: 19,
  SYS_ADMIN: 21,
  SYS_RESOURCE: 24,
  PERFMON: 38,
  BPF: 39,
} as const;

export const TRACEFS = '/sys/kernel/tracing';
export const TRACEFS_DIRS = [TRACEFS, '/sys/kernel/debug/tracing'];

/** what to do about each failure: preflight's errors and `osprey doctor` say the same */
export const FIX = {
  privilege: 'run it with sudo, or grant: setcap cap_bpf,cap_perfmon,cap_sys_resource+ep $(readlink -f $(which node))',
  kernel: 'upgrade the kernel to 5.15+',
  btf: 'use a kernel built with CONFIG_DEBUG_INFO_BTF=y (all major distributions since 2021)',
  tracefs: `mount it: mount -t tracefs nodev ${TRACEFS}`,
} as const;

export interface PreflightReport {
  kernel: string;
  btf: boolean;
  tracefs: string;
  tracefsMounted: boolean;
}

export function effectiveCaps(statusPath = '/proc/self/status'): bigint {
  const status = readFileSync(statusPath, 'utf8');
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

export function hasCap(caps: bigint, bit: number): boolean {
  return (caps >> BigInt(bit)) & 1n ? true : false;
}

/** CAP_BPF+CAP_PERFMON (5.8+), or CAP_SYS_ADMIN which covers both */
export function canLoadBpf(caps: bigint): boolean {
  return hasCap(caps, CAP.SYS_ADMIN) || (hasCap(caps, CAP.BPF) && hasCap(caps, CAP.PERFMON));
}

export function kernelVersion(rel = release()): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

/** the first of `dirs` where tracefs is mounted (it has the syscall events) */
export function tracefsReady(dirs = TRACEFS_DIRS): string | undefined {
  return dirs.find((d) => existsSync(`${d}/events/syscalls`));
}

export function preflight(opts: { mountTracefs?: boolean } = {}): PreflightReport {
  if (process.platform !== 'linux') {
    throw new KernelError('not-linux', `osprey needs Linux, this is ${process.platform}`, 'run it on a Linux host');
  }
  const caps = effectiveCaps();
  const privileged = canLoadBpf(caps);
  if (!privileged) {
    throw new KernelError(
      'no-privilege',
      'osprey needs root or CAP_BPF+CAP_PERFMON (and CAP_SYS_RESOURCE) to load eBPF programs',
      FIX.privilege,
    );
  }
  const [major, minor] = kernelVersion();
  // 5.8: the BPF ring buffer; 5.12: pointer arguments of global BPF functions (the capture's
  // shared exit path); 5.15: bpf_get_attach_cookie (which file a uprobe fired in)
  if (major < 5 || (major === 5 && minor < 15)) {
    throw new KernelError(
      'kernel-too-old',
      `kernel ${release()} is too old: osprey needs 5.15 or newer (BPF ring buffer, global functions with pointer arguments, uprobe cookies)`,
      FIX.kernel,
    );
  }
  if (!existsSync('/sys/kernel/btf/vmlinux')) {
    throw new KernelError(
      'no-btf',
      'kernel BTF is missing (/sys/kernel/btf/vmlinux): osprey needs CO-RE type information',
      FIX.btf,
    );
  }
  let dir = tracefsReady();
  let mounted = false;
  if (!dir && opts.mountTracefs !== false) {
    try {
      execFileSync('mount', ['-t', 'tracefs', 'nodev', TRACEFS], { stdio: 'ignore' });
      mounted = true;
    } catch {
      // reported below
    }
    dir = tracefsReady();
  }
  if (!dir) {
    throw new KernelError(
      'no-tracefs',
      `tracefs is not mounted at ${TRACEFS}, so syscall tracepoints cannot be attached`,
      FIX.tracefs,
    );
  }
  return { kernel: release(), btf: true, tracefs: dir, tracefsMounted: mounted };
}
