// Who a pid is: the OpenTelemetry resource of its spans. Read once per process
// from /proc (environ, cmdline, exe, cgroup) and cached, bounded, with cleanup of
// processes that exited. Container and Kubernetes identity come from src/resource: an
// enricher (Kubernetes metadata) may add to a process's resource later, IN PLACE - a pod
// the informer did not know yet when the process was first seen - so a resource object is
// not frozen: whoever caches by object must compare its values (the store's writer does).
import { readFileSync, readlinkSync, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename } from 'node:path';
import { redactArgv } from '../redact.js';
import type { Attributes } from '../../model/index.js';
import { identityFromCgroup, type CgroupIdentity } from '../../resource/cgroup.js';
import { detectRuntime, type RuntimeInfo } from './runtime.js';

export { containerIdFromCgroup } from '../../resource/cgroup.js';

export interface ProcessInfo {
  pid: number;
  resource: Attributes;
  serviceName: string;
  /** how the process maps requests onto threads (decides the linker's thread rule) */
  runtime: RuntimeInfo;
  /** sweeps to skip before the runtime is looked at again (doubles each time) */
  recheckIn: number;
  recheckEvery: number;
  /** the container and pod its cgroup names */
  cgroup: CgroupIdentity;
  /** service.name was set by the process itself (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES): nothing overrides it */
  serviceFromEnv: boolean;
}

/** Adds identity (Kubernetes metadata) to processes, now or later, in place. */
export interface ResourceEnricher {
  /** a process just read: may write into p.resource and p.serviceName, now and later */
  enrich(p: ProcessInfo): void;
  /** the process exited or left the table: no more updates */
  forget(pid: number): void;
}

/** a runtime that may still change model is looked at again after 1, 2, 4 … 64 sweeps, then every 64 */
const MAX_RECHECK_SWEEPS = 64;

/** interpreters whose service is the script they run, not themselves */
const INTERPRETERS = /^(python[0-9.]*|node|nodejs|ruby[0-9.]*|perl[0-9.]*|php[0-9.]*|bun|deno|java)$/;
const MAX_ENV_BYTES = 1 << 20;
/** interpreter flags whose value is the next argument */
const JAVA_VALUE_FLAGS = new Set(['-cp', '-classpath', '--class-path', '-p', '--module-path', '--add-opens', '--add-exports', '-r', '--require', '--import', '--loader', '-W', '-X']);

function readSafe(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

/** OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES from a process environment (NUL-separated) */
export function parseEnviron(buf: Buffer): { serviceName?: string; resourceAttrs: Attributes } {
  const out: { serviceName?: string; resourceAttrs: Attributes } = { resourceAttrs: {} };
  const text = buf.subarray(0, MAX_ENV_BYTES).toString('utf8');
  for (const entry of text.split('\0')) {
    if (entry.startsWith('OTEL_SERVICE_NAME=')) {
      const v = entry.slice('OTEL_SERVICE_NAME='.length).trim();
      if (v) out.serviceName = v;
    } else if (entry.startsWith('OTEL_RESOURCE_ATTRIBUTES=')) {
      for (const kv of entry.slice('OTEL_RESOURCE_ATTRIBUTES='.length).split(',')) {
        const i = kv.indexOf('=');
        if (i <= 0) continue;
        const k = kv.slice(0, i).trim();
        const v = decodeURIComponentSafe(kv.slice(i + 1).trim());
        if (k) out.resourceAttrs[k] = v;
      }
    }
  }
  return out;
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** the service an executable + argv stand for: `python3 app.py` -> `app` */
export function serviceFromCommand(exe: string, argv: string[]): string {
  const name = basename(exe);
  if (!INTERPRETERS.test(name)) return name || 'unknown';
  // first argument that is a script or module, skipping interpreter flags
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-m' && argv[i + 1]) return argv[i + 1]!.split('.')[0]!;
    if (a === '-c' || a === '-e' || a === '--eval' || a === '-p') return name;
    if (a === '-jar' && argv[i + 1]) return basename(argv[i + 1]!).replace(/\.jar$/, '');
    if (JAVA_VALUE_FLAGS.has(a)) {
      i++;
      continue;
    }
    if (a.startsWith('-')) continue;
    // java's main class: org.example.Main -> Main
    const script = basename(a)
      .replace(/\.(py|js|mjs|cjs|ts|rb|pl|php|java)$/, '')
      .replace(/^.*\.(?=[A-Z][\w$]*$)/, '');
    return script || name;
  }
  return name;
}

export class ProcessTable {
  readonly #cache = new Map<number, ProcessInfo>();
  readonly #host = hostname();
  readonly #max: number;
  readonly #enricher: ResourceEnricher | undefined;
  evicted = 0;

  constructor(max = 8192, enricher?: ResourceEnricher) {
    this.#max = max;
    this.#enricher = enricher;
  }

  get size(): number {
    return this.#cache.size;
  }

  /** the process if it is in the table (nothing read) */
  known(pid: number): ProcessInfo | undefined {
    return this.#cache.get(pid);
  }

  /** resource of a pid; comm is the kernel's name for when /proc is gone already */
  get(pid: number, comm: string): ProcessInfo {
    let p = this.#cache.get(pid);
    if (p) return p;
    p = this.#read(pid, comm);
    if (this.#cache.size >= this.#max) {
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) {
        this.#cache.delete(oldest);
        this.#enricher?.forget(oldest);
      }
      this.evicted++;
    }
    this.#cache.set(pid, p);
    this.#enricher?.enrich(p);
    return p;
  }

  /** the processes seen (most recent last) */
  list(): IterableIterator<ProcessInfo> {
    return this.#cache.values();
  }

  /** the thread model of a pid (read from /proc when the pid is not known yet) */
  model(pid: number): RuntimeInfo['model'] {
    return (this.#cache.get(pid) ?? this.get(pid, '')).runtime.model;
  }

  /**
   * Drops processes that exited (each reported to `gone`) and looks again at the runtimes
   * that may still change model (a JVM starting virtual threads, Python importing asyncio),
   * less and less often: that mostly happens at start, and the linker learns the rest from
   * how requests are answered. Call periodically.
   */
  sweep(gone?: (pid: number) => void): number {
    let n = 0;
    for (const [pid, p] of this.#cache) {
      if (!existsSync(`/proc/${pid}`)) {
        this.#cache.delete(pid);
        this.#enricher?.forget(pid);
        gone?.(pid);
        n++;
      } else if (p.runtime.recheck && --p.recheckIn <= 0) {
        p.runtime = detectRuntime(pid, String(p.resource['process.executable.name'] ?? ''), '');
        p.recheckEvery = Math.min(p.recheckEvery * 2, MAX_RECHECK_SWEEPS);
        p.recheckIn = p.recheckEvery;
      }
    }
    return n;
  }

  #read(pid: number, comm: string): ProcessInfo {
    let exe = '';
    try {
      exe = readlinkSync(`/proc/${pid}/exe`);
    } catch {
      exe = comm;
    }
    const argv = (readSafe(`/proc/${pid}/cmdline`)?.toString('utf8') ?? '').split('\0').filter(Boolean);
    const env = readSafe(`/proc/${pid}/environ`);
    const fromEnv = env ? parseEnviron(env) : { resourceAttrs: {} as Attributes };
    const cgroup = readSafe(`/proc/${pid}/cgroup`)?.toString('utf8') ?? '';
    const cg = identityFromCgroup(cgroup);
    const containerId = cg.containerId;
    const envService = fromEnv.serviceName ?? (typeof fromEnv.resourceAttrs['service.name'] === 'string' ? fromEnv.resourceAttrs['service.name'] : undefined);
    const serviceName = envService ?? serviceFromCommand(exe.replace(/ \(deleted\)$/, '') || comm, argv.length ? argv : [comm]);
    const resource: Attributes = {
      ...fromEnv.resourceAttrs,
      'service.name': serviceName,
      'process.pid': pid,
      'process.executable.name': basename(exe) || comm,
      'host.name': this.#host,
    };
    if (argv.length) resource['process.command_line'] = redactArgv(argv).join(' ').slice(0, 1024);
    if (containerId) resource['container.id'] = containerId;
    return { pid, resource, serviceName, runtime: detectRuntime(pid, exe, comm), recheckIn: 1, recheckEvery: 1, cgroup: cg, serviceFromEnv: envService !== undefined };
  }
}

