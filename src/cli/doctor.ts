// `osprey doctor`: the node preflight as a table (or JSON), exit 1 when the agent cannot run.
import { tlsCheck } from '../agent/tls/doctor-check.js';
import { doctorChecks, type Check } from '../kernel/doctor.js';
import { flushStdout, type Command } from './cli.js';

const MARK: Record<Check['status'], string> = { pass: 'pass', warn: 'warn', fail: 'FAIL', skip: 'skip' };

export function formatDoctor(checks: Check[]): string {
  const width = Math.max(...checks.map((c) => c.id.length));
  const lines: string[] = [];
  for (const c of checks) {
    lines.push(`${MARK[c.status]}  ${c.id.padEnd(width)}  ${c.detail}`);
    if (c.fix && (c.status === 'fail' || c.status === 'warn')) lines.push(`${''.padEnd(width + 8)}fix: ${c.fix}`);
  }
  const failed = checks.filter((c) => c.status === 'fail').length;
  lines.push('');
  lines.push(failed ? `${failed} check${failed > 1 ? 's' : ''} failed: this node cannot run the agent until fixed.` : 'this node can run the agent.');
  return `${lines.join('\n')}\n`;
}

export const doctorCommand: Command = {
  name: 'doctor',
  summary:
    'Check that this node can run the agent: kernel version, BTF, tracefs, syscall tracepoints,\n' +
    'capabilities, memlock, /proc access, cgroup v2, uprobes; then load and attach the programs,\n' +
    'and the TLS uprobes to the OpenSSL libraries of the running processes.\n' +
    'Prints pass/warn/FAIL per check with the fix; exits 1 when a check fails. Changes nothing.',
  usage: 'osprey doctor [--json] [--no-load]',
  help: [
    '      --json                one JSON object: {"ok":bool,"checks":[{"id","status","detail","fix"}]}',
    '      --no-load             skip the last check (loading and attaching the eBPF programs)',
  ].join('\n'),
  options: { json: { type: 'boolean' }, 'no-load': { type: 'boolean' } },
  async run({ values }) {
    const checks = doctorChecks({ load: values['no-load'] !== true });
    // with the programs loadable, which running processes' TLS libraries take the probes
    if (checks.find((c) => c.id === 'load')?.status === 'pass') checks.push(await tlsCheck());
    const ok = checks.every((c) => c.status !== 'fail');
    process.stdout.write(values.json ? `${JSON.stringify({ ok, checks })}\n` : formatDoctor(checks));
    await flushStdout();
    return ok ? 0 : 1;
  },
};
