// `osprey doctor`: can this node run the agent? Every check runs (preflight stops at the
// first failure), each says what it found and, when it fails, what to do. Nothing is
// changed on the machine: tracefs is reported, not mounted. The last check loads and
// attaches the real programs, which is the only proof that the rest was enough.
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { Capture, REQUIRED_SYSCALLS } from './capture.js';
import { KernelError } from './errors.js';
import { CAP, canLoadBpf, effectiveCaps, FIX, hasCap, kernelVersion, TRACEFS, TRACEFS_DIRS, tracefsReady } from './preflight.js';

/** pass; warn: works, with less (never fails the run); fail: the agent cannot run; skip: not checked because of an earlier failure */
export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';

export interface Check {
  id: string;
  status: CheckStatus;
  /** what was found */
  detail: string;
  /** what to do, for warn and fail */
  fix?: string;
}

/** where the checks look; tests point them elsewhere to see a failure on a healthy machine */
export interface DoctorEnv {
  release: string;
  tracefsDirs: string[];
  btf: string;
  procStatus: string;
  procFilesystems: string;
  procMounts: string;
  procLimits: string;
  cgroupRoot: string;
  eventSources: string;
  /** load and attach the programs (the final check) */
  load: boolean;
}

export const DEFAULT_ENV: DoctorEnv = {
  release: release(),
  tracefsDirs: TRACEFS_DIRS,
  btf: '/sys/kernel/btf/vmlinux',
  procStatus: '/proc/self/status',
  procFilesystems: '/proc/filesystems',
  procMounts: '/proc/self/mounts',
  procLimits: '/proc/self/limits',
  cgroupRoot: '/sys/fs/cgroup',
  eventSources: '/sys/bus/event_source/devices',
  load: true,
};

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function atLeast(rel: string, major: number, minor: number): boolean {
  const [a, b] = kernelVersion(rel);
  return a > major || (a === major && b >= minor);
}

const capNames = (caps: bigint) =>
  Object.entries(CAP)
    .filter(([, bit]) => hasCap(caps, bit))
    .map(([name]) => name)
    .join(' ') || 'none';

export function doctorChecks(given: Partial<DoctorEnv> = {}): Check[] {
  const env = { ...DEFAULT_ENV, ...given };
  const checks: Check[] = [];
  const add = (c: Check) => (checks.push(c), c);

  const kernelOk = atLeast(env.release, 5, 15);
  add(
    kernelOk
      ? { id: 'kernel', status: 'pass', detail: `${env.release} (5.15 or newer needed: BPF ring buffer, global BPF functions with pointer arguments, uprobe cookies)` }
      : { id: 'kernel', status: 'fail', detail: `${env.release} is older than 5.15`, fix: FIX.kernel },
  );

  const btf = existsSync(env.btf);
  add(btf ? { id: 'btf', status: 'pass', detail: `${env.btf} present (CO-RE)` } : { id: 'btf', status: 'fail', detail: `${env.btf} missing`, fix: FIX.btf });

  const tracefs = tracefsReady(env.tracefsDirs);
  if (tracefs) {
    add({ id: 'tracefs', status: 'pass', detail: `mounted at ${tracefs}` });
  } else {
    const supported = /\btracefs$/m.test(read(env.procFilesystems) ?? '');
    add({
      id: 'tracefs',
      status: 'fail',
      detail: `not mounted at ${env.tracefsDirs.join(' or ')}${supported ? ' (the kernel has tracefs: it can be mounted)' : ' and the kernel lists no tracefs'}`,
      fix: supported
        ? `${FIX.tracefs} (on a Kubernetes node: on the host, e.g. a systemd mount unit; the agent pod mounts the host's ${TRACEFS})`
        : 'use a kernel built with CONFIG_TRACING (every distribution kernel is)',
    });
  }

  if (!tracefs) {
    add({ id: 'syscall-tracepoints', status: 'skip', detail: 'needs tracefs' });
  } else {
    const names = REQUIRED_SYSCALLS.flatMap((s) => [`sys_enter_${s}`, `sys_exit_${s}`]);
    const missing = names.filter((n) => !existsSync(`${tracefs}/events/syscalls/${n}`));
    add(
      missing.length === 0
        ? { id: 'syscall-tracepoints', status: 'pass', detail: `${names.length} required present (${REQUIRED_SYSCALLS.join(', ')}: enter and exit)` }
        : {
            id: 'syscall-tracepoints',
            status: 'fail',
            detail: `missing: ${missing.join(', ')}`,
            fix: 'use a kernel built with CONFIG_FTRACE_SYSCALLS=y (syscall tracepoints)',
          },
    );
  }

  let caps = 0n;
  try {
    caps = effectiveCaps(env.procStatus);
  } catch {
    // read as none
  }
  const bpfOk = canLoadBpf(caps);
  add(
    bpfOk
      ? { id: 'capabilities', status: 'pass', detail: `effective: ${capNames(caps)}` }
      : {
          id: 'capabilities',
          status: 'fail',
          detail: `effective: ${capNames(caps)}; loading eBPF needs BPF and PERFMON (or SYS_ADMIN)`,
          fix: `${FIX.privilege}; in a pod: securityContext.capabilities.add [BPF, PERFMON, SYS_RESOURCE, SYS_PTRACE, DAC_READ_SEARCH] (osprey manifests does)`,
        },
  );

  // kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; later ones to the memory cgroup
  const memlock = /^Max locked memory\s+(\S+)/m.exec(read(env.procLimits) ?? '')?.[1];
  if (atLeast(env.release, 5, 11)) {
    add({ id: 'memlock', status: 'pass', detail: 'kernel 5.11+ charges BPF maps to the memory cgroup, RLIMIT_MEMLOCK does not apply' });
  } else if (hasCap(caps, CAP.SYS_RESOURCE) || memlock === 'unlimited') {
    add({ id: 'memlock', status: 'pass', detail: `RLIMIT_MEMLOCK ${memlock ?? '?'}${hasCap(caps, CAP.SYS_RESOURCE) ? ', SYS_RESOURCE lets libbpf raise it' : ''}` });
  } else {
    add({
      id: 'memlock',
      status: 'fail',
      detail: `kernel before 5.11 charges BPF maps to RLIMIT_MEMLOCK (${memlock ?? '?'} bytes) and SYS_RESOURCE is missing`,
      fix: 'grant CAP_SYS_RESOURCE, or run with ulimit -l unlimited',
    });
  }

  add(procAccess(caps));

  const controllers = read(`${env.cgroupRoot}/cgroup.controllers`);
  if (controllers !== undefined) {
    add({ id: 'cgroup-v2', status: 'pass', detail: `unified hierarchy at ${env.cgroupRoot}` });
  } else {
    // a cgroup2 mount elsewhere (systemd's hybrid layout puts it at <root>/unified)
    const v2 = (read(env.procMounts) ?? '')
      .split('\n')
      .find((l) => l.split(' ')[2] === 'cgroup2')
      ?.split(' ')[1];
    add({
      id: 'cgroup-v2',
      status: 'warn',
      detail: v2 ? `hybrid: v1 controllers at ${env.cgroupRoot}, v2 at ${v2}` : `cgroup v1 only at ${env.cgroupRoot}`,
      fix: 'container ids are read from v1 paths too; for cgroup-attached programs boot with systemd.unified_cgroup_hierarchy=1',
    });
  }

  const uprobe = existsSync(`${env.eventSources}/uprobe/type`);
  add(
    uprobe
      ? { id: 'uprobes', status: 'pass', detail: 'uprobe PMU present (TLS libraries, runtime context)' }
      : {
          id: 'uprobes',
          status: 'warn',
          detail: 'no uprobe PMU: plaintext HTTP is traced, TLS plaintext and runtime context are not',
          fix: 'use a kernel built with CONFIG_UPROBE_EVENTS=y',
        },
  );

  const kprobe = existsSync(`${env.eventSources}/kprobe/type`);
  add({ id: 'kprobes', status: 'pass', detail: kprobe ? 'present (not needed)' : 'absent: fine, osprey needs none' });

  const ready = checks.every((c) => c.status !== 'fail');
  if (!env.load) {
    add({ id: 'load', status: 'skip', detail: 'not asked (--no-load)' });
  } else if (!ready) {
    add({ id: 'load', status: 'skip', detail: 'a check above failed' });
  } else {
    add(loadCheck());
  }
  return checks;
}

/**
 * The agent names a process of another user from /proc/<pid>/exe, which passes a ptrace
 * access check (SYS_PTRACE), and /proc/<pid>/environ (OTEL_SERVICE_NAME), mode 0400 of its
 * owner, which root without DAC_OVERRIDE opens only with DAC_READ_SEARCH. Judged from the
 * capabilities held (doctor opens no other process's files); test/deploy-caps.test.ts
 * reads a real process of another uid with and without each.
 */
function procAccess(caps: bigint): Check {
  const lacking = (['SYS_PTRACE', 'DAC_READ_SEARCH'] as const).filter((c) => !hasCap(caps, CAP[c]));
  if (lacking.length === 0) return { id: 'process-metadata', status: 'pass', detail: "SYS_PTRACE and DAC_READ_SEARCH: other users' /proc/<pid>/exe and environ are readable" };
  return {
    id: 'process-metadata',
    status: 'warn',
    detail: `without ${lacking.join(' and ')}: ${lacking.map((c) => (c === 'SYS_PTRACE' ? '/proc/<pid>/exe' : '/proc/<pid>/environ')).join(' and ')} of other users' processes unreadable, so their services are named from less (no OTEL_SERVICE_NAME, or no executable name)`,
    fix: `grant ${lacking.map((c) => `CAP_${c}`).join(' and ')} (in a pod: securityContext.capabilities.add)`,
  };
}

function loadCheck(): Check {
  let cap: Capture | undefined;
  try {
    cap = Capture.open({ onBatch: () => {} });
    const attached = cap.programs.filter((p) => p.attached).length;
    const failed = cap.programs.filter((p) => !p.attached);
    return failed.length === 0
      ? { id: 'load', status: 'pass', detail: `loaded and attached ${attached}/${cap.programs.length} programs` }
      : {
          id: 'load',
          status: 'warn',
          detail: `attached ${attached}/${cap.programs.length}; not attached: ${failed.map((p) => `${p.tracepoint} (${p.error ?? '?'})`).join(', ')}`,
          fix: 'the calls of those syscalls are not traced; the required ones are attached',
        };
  } catch (err) {
    const e = err as Error & { hint?: string };
    return { id: 'load', status: 'fail', detail: e.message, fix: err instanceof KernelError ? err.hint : (e.hint ?? 'run `make build` (the native addon and bpf object)') };
  } finally {
    void cap?.close();
  }
}
