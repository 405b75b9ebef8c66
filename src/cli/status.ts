// `osprey status`: what is attached and every counter. Asks the running agent
// (osprey up) first; without one, loads the probes briefly to check the machine.
import { Capture, preflight } from '../kernel/index.js';
import { type Command } from './cli.js';

export const statusCommand: Command = {
  name: 'status',
  summary:
    'Show what is attached, event and span rates and every drop counter of the running agent\n(osprey up). Without a running agent, checks that this machine can run one.',
  usage: 'osprey status [--server URL] [--json]',
  help: [
    '      --server URL          agent to ask (default http://127.0.0.1:7070)',
    '      --json                print the status as JSON',
  ].join('\n'),
  options: { server: { type: 'string' }, json: { type: 'boolean' } },
  async run({ values }) {
    const server = (values.server as string | undefined) ?? 'http://127.0.0.1:7070';
    const remote = await fetchStatus(server);
    if (remote) {
      process.stdout.write(values.json ? `${JSON.stringify(remote)}\n` : formatStatus(remote));
      return 0;
    }
    const local = selfCheck();
    if (values.json) {
      process.stdout.write(`${JSON.stringify(local)}\n`);
    } else {
      process.stdout.write(`no agent answers at ${server}; checking this machine instead\n`);
      process.stdout.write(formatStatus(local));
    }
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

async function fetchStatus(server: string): Promise<StatusReport | undefined> {
  try {
    const r = await fetch(new URL('/api/osprey/status', server), { signal: AbortSignal.timeout(1500) });
    if (!r.ok) return undefined;
    return (await r.json()) as StatusReport;
  } catch {
    return undefined;
  }
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

export function formatStatus(s: StatusReport): string {
  const lines = [`agent:    ${s.agent}`, `kernel:   ${s.kernel}`, `tracefs:  ${s.tracefs}`];
  const self = s.self as Record<string, number> | undefined;
  if (self) {
    const mb = (b: number | undefined) => `${Math.round((b ?? 0) / 2 ** 20)} MB`;
    lines.push(`cost:     ${self.cpuCoresAverage} cores on average (${self.cpuSeconds} s of CPU), RSS ${mb(self.rssBytes)} (JS heap ${mb(self.heapUsedBytes)})`);
  }
  const ok = s.programs.filter((p) => p.attached).length;
  lines.push(`programs: ${ok}/${s.programs.length} attached`);
  for (const p of s.programs) lines.push(`  ${p.attached ? 'ok  ' : 'FAIL'} ${p.tracepoint}${p.error ? `  (${p.error})` : ''}`);
  lines.push('counters:');
  for (const [k, v] of Object.entries(s.counters)) lines.push(`  ${k.padEnd(28)} ${v}`);
  if (s.maps) {
    lines.push('kernel maps (entries):');
    for (const [k, v] of Object.entries(s.maps)) lines.push(`  ${k.padEnd(28)} ${v}`);
  }
  return `${lines.join('\n')}\n`;
}
