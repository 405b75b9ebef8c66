// Checks the machine before loading anything, so a user gets one actionable line
// instead of a libbpf errno: privileges, BTF, kernel version, tracefs.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { KernelError } from './errors.js';

const CAP_SYS_ADMIN = 21;
const CAP_PERFMON = 38;
const CAP_BPF = 39;

export const TRACEFS = '/sys/kernel/tracing';
const TRACEFS_DIRS = [TRACEFS, '/sys/kernel/debug/tracing'];

export interface PreflightReport {
  kernel: string;
  btf: boolean;
  tracefs: string;
  tracefsMounted: boolean;
}

function effectiveCaps(): bigint {
  const status = readFileSync('/proc/self/status', 'utf8');
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

function hasCap(caps: bigint, bit: number): boolean {
  return (caps >> BigInt(bit)) & 1n ? true : false;
}

export function kernelVersion(): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release());
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

function tracefsReady(): string | undefined {
  return TRACEFS_DIRS.find((d) => existsSync(`${d}/events/syscalls`));
}

export function preflight(opts: { mountTracefs?: boolean } = {}): PreflightReport {
  if (process.platform !== 'linux') {
    throw new KernelError('not-linux', `osprey needs Linux, this is ${process.platform}`, 'run it on a Linux host');
  }
  const caps = effectiveCaps();
  const privileged = hasCap(caps, CAP_SYS_ADMIN) || (hasCap(caps, CAP_BPF) && hasCap(caps, CAP_PERFMON));
  if (!privileged) {
    throw new KernelError(
      'no-privilege',
      'osprey needs root or CAP_BPF+CAP_PERFMON (and CAP_SYS_RESOURCE) to load eBPF programs',
      'run it with sudo, or grant: setcap cap_bpf,cap_perfmon,cap_sys_resource+ep $(readlink -f $(which node))',
    );
  }
  const [major, minor] = kernelVersion();
  if (major < 5 || (major === 5 && minor < 8)) {
    throw new KernelError(
      'kernel-too-old',
      `kernel ${release()} is too old: osprey needs 5.8 or newer (BPF ring buffer)`,
      'upgrade the kernel to 5.8+',
    );
  }
  if (!existsSync('/sys/kernel/btf/vmlinux')) {
    throw new KernelError(
      'no-btf',
      'kernel BTF is missing (/sys/kernel/btf/vmlinux): osprey needs CO-RE type information',
      'use a kernel built with CONFIG_DEBUG_INFO_BTF=y (all major distributions since 2021)',
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
      `mount it: mount -t tracefs nodev ${TRACEFS}`,
    );
  }
  return { kernel: release(), btf: true, tracefs: dir, tracefsMounted: mounted };
}
