// `osprey status`: what is attached and every counter. Asks the running agent
// (osprey up) first; without one, loads the probes briefly to check the machine.
import { Capture, preflight } from '../kernel/index.js';
import { flushStdout, type Command } from './cli.js';
import { getJson, serverUrl } from './client.js';
import type { SelfMemoryReport } from './self-memory.js';

export const statusCommand: Command = {
  name: 'status',
  summary:
    'Show what is attached, event and span rates and every drop counter of the running agent\n(osprey up). Without a running agent: says so, checks that this machine can run one, exits 1.',
  usage: 'osprey status [--server URL] [--json]',
  help: [
    '      --server URL          agent to ask (default http://127.0.0.1:7070)',
    '      --json                print the status as JSON',
  ].join('\n'),
  options: { server: { type: 'string' }, json: { type: 'boolean' } },
  async run({ values }) {
    const server = serverUrl(values.server);
    let remote: StatusReport;
    try {
      remote = await fetchStatus(server);
    } catch (err) {
      if (!(err instanceof NoAgent)) throw err;
      // no agent: say so (exit 1), then what this machine could run
      const e = err.cause as Error & { hint?: string };
      process.stderr.write(`osprey: ${e.message}\n  fix: start the agent with \`osprey up\`, or pass --server URL of a running one\n`);
      const local = selfCheck();
      process.stdout.write(values.json ? `${JSON.stringify(local)}\n` : `checking this machine instead:\n${formatStatus(local)}`);
      await flushStdout();
      return 1;
    }
    process.stdout.write(values.json ? `${JSON.stringify(remote)}\n` : formatStatus(remote));
    await flushStdout();
    return 0;
  },
};

export interface StatusReport {
  agent: 'running' | 'not running';
  kernel: string;
  tracefs: string;
  programs: { tracepoint: string; attached: boolean; error?: string }[];
  counters: Record<string, number>;
  maps?: Record<string, number>;
  [k: string]: unknown;
}

class NoAgent extends Error {}

async function fetchStatus(server: URL): Promise<StatusReport> {
  let r;
  try {
    r = await getJson(server, '/api/osprey/status', {}, 5000);
  } catch (err) {
    throw new NoAgent('no agent', { cause: err });
  }
  const body = r.body as (StatusReport & { error?: string }) | undefined;
  if (r.status !== 200 || typeof body !== 'object' || body === null || !Array.isArray(body.programs)) {
    throw Object.assign(new Error(`${server.origin} is not an osprey agent (GET /api/osprey/status: ${body?.error ?? `HTTP ${r.status} ${r.type}`})`), {
      hint: 'pass --server URL of a running `osprey up` (it prints its URL)',
    });
  }
  return body;
}

function selfCheck(): StatusReport {
  const pf = preflight();
  const cap = Capture.open({ onBatch: () => {} });
  try {
    return {
      agent: 'not running',
      kernel: pf.kernel,
      tracefs: pf.tracefs,
      programs: cap.programs.map((p) => ({ tracepoint: p.tracepoint, attached: p.attached, error: p.error })),
      counters: cap.counters(),
    };
  } finally {
    void cap.close();
  }
}

const mb = (b: number | undefined): string => `${Math.round((b ?? 0) / 2 ** 20)} MB`;

export function formatStatus(s: StatusReport): string {
  const lines = [`agent:    ${s.agent}`, `kernel:   ${s.kernel}`, `tracefs:  ${s.tracefs}`];
  const self = s.self as Record<string, number> | undefined;
  if (self) {
    lines.push(`cost:     ${self.cpuCoresAverage} cores on average (${self.cpuSeconds} s of CPU), RSS ${mb(self.rssBytes)} (JS heap ${mb(self.heapUsedBytes)})`);
  }
  const mem = s.memory as SelfMemoryReport | undefined;
  if (mem) lines.push(formatMemory(mem));
  const bg = s.backgroundPriority as { nice: number | 'off'; base?: number; threads_lowered?: number } | undefined;
  if (bg) {
    if (bg.nice === 'off') lines.push("priority: background threads at the process's own (--background-nice 0)");
    else {
      // --background-nice is added to the agent's own nice value (capped at 19): both shown
      const own = bg.base === undefined ? '' : `the agent's own ${bg.base} + ${bg.nice - bg.base}; `;
      lines.push(`priority: ${bg.threads_lowered ?? 0} background threads at nice ${bg.nice} (${own}after the JS thread and the ring-buffer reader)`);
    }
  }
  const grpc = s.otlpGrpc as { listening: string | false } | undefined;
  if (grpc) lines.push(`otlp/grpc: ${grpc.listening === false ? 'off' : `listening on ${grpc.listening}`}`);
  const ok = s.programs.filter((p) => p.attached).length;
  lines.push(`programs: ${ok}/${s.programs.length} attached`);
  for (const p of s.programs) lines.push(`  ${p.attached ? 'ok  ' : 'FAIL'} ${p.tracepoint}${p.error ? `  (${p.error})` : ''}`);
  const up = Array.isArray(s.uprobes) ? (s.uprobes as { path: string; status: string; reason?: string; probes: number; processes: number; idleMs?: number }[]) : [];
  if (up.length) {
    lines.push(`TLS uprobes: ${up.filter((f) => f.status === 'attached').length} file(s)`);
    for (const f of up) {
      // a lingering file keeps its probes though no process maps it (--uprobe-linger)
      const idle = f.idleMs !== undefined ? `; unused for ${Math.round(f.idleMs / 1000)}s, lingering` : '';
      lines.push(`  ${f.status === 'attached' ? 'ok  ' : f.status.padEnd(4)} ${f.path}  (${f.status === 'attached' ? `${f.probes} probes, ` : ''}${f.processes} processes${idle}${f.reason ? `; ${f.reason}` : ''})`);
    }
  }
  const gr = s.goRuntime as { files: { path: string; status: string; reason?: string; probes: number; processes: number }[]; counters: Record<string, number> } | undefined;
  if (gr) {
    lines.push(`Go runtime context: ${gr.files.filter((f) => f.status === 'attached').length} executable(s), ${gr.counters.processes_now ?? 0} process(es)`);
    for (const f of gr.files) lines.push(`  ${f.status === 'attached' ? 'ok  ' : f.status.padEnd(4)} ${f.path}  (${f.status === 'attached' ? `${f.probes} probes, ` : ''}${f.processes} processes${f.reason ? `; ${f.reason}` : ''})`);
    for (const [k, v] of Object.entries(gr.counters)) lines.push(`  ${k.padEnd(28)} ${v}`);
  }
  lines.push('counters:');
  for (const [k, v] of Object.entries(s.counters)) lines.push(`  ${k.padEnd(28)} ${v}`);
  const procs = s.processes as { pid: number; service: string; runtime: string; threadModel: string; evidence: string }[] | undefined;
  if (procs?.length) {
    lines.push('processes (thread model decides thread links):');
    for (const p of procs) lines.push(`  ${String(p.pid).padEnd(8)} ${p.service.padEnd(20)} ${p.runtime.padEnd(10)} ${p.threadModel.padEnd(12)} ${p.evidence}`);
  }
  const k = s.kubernetes as
    | { state: string; server: string; node: string; podsCached: number; servicesCached: number; ownersCached: number; lastError?: string; lastErrorAt?: string; counters: Record<string, number>; processes?: Record<string, number> }
    | undefined;
  if (k) {
    lines.push(`kubernetes: ${k.state} (${k.server}, node ${k.node})`);
    lines.push(`  cached: ${k.podsCached} pods of this node, ${k.servicesCached} services, ${k.ownersCached} owners`);
    if (k.processes) lines.push(`  processes: ${k.processes.tracked} in pods, ${k.processes.waiting} waiting for their pod`);
    lines.push(`  errors: ${k.counters.errors ?? 0}${k.lastError ? `, last at ${k.lastErrorAt}: ${k.lastError}` : ''}`);
  }
  if (s.maps) {
    lines.push('kernel maps (entries):');
    for (const [k, v] of Object.entries(s.maps)) lines.push(`  ${k.padEnd(28)} ${v}`);
  }
  return `${lines.join('\n')}\n`;
}

/** one line: where the resident memory is, and the limits in force */
function formatMemory(m: SelfMemoryReport): string {
  const duck = m.store ? `; DuckDB ${mb(m.store.usedBytes)} of memory_limit ${m.store.limit}` : '';
  const arenas = m.mallocArenaMax === undefined ? 'glibc default' : String(m.mallocArenaMax);
  return `memory:   RSS ${mb(m.rssBytes)} (peak ${mb(m.peakRssBytes)}) = anonymous ${mb(m.anonymousBytes)} + file-backed ${mb(m.fileBytes)}; V8 heap ${mb(m.v8.usedBytes)} used of ${mb(m.v8.totalBytes)} (young ${mb(m.v8.newSpaceBytes)})${duck}; malloc arenas max ${arenas}${m.store && m.duckdbAllocatorConf ? `; DuckDB allocator ${m.duckdbAllocatorConf}` : ''}`;
}
