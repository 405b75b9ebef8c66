// `osprey events`: stream decoded kernel events, for debugging the capture layer.
import { Capture, decodeBatch, Flag, formatAddr, type DecodeStats, type KernelEvent } from '../kernel/index.js';
import { flushStdout, intOption, untilSignal, type Command } from './cli.js';

export const eventsCommand: Command = {
  name: 'events',
  summary:
    'Stream the socket events the kernel side captures (accept, connect, send, recv, close)\nfor every TCP connection of every process. Ctrl-C drains and exits.\nThe stream shows payload bytes as captured, credentials included: it is for debugging on\nthis machine and nothing of it is stored (spans never keep Authorization, cookies or secrets).',
  usage: 'osprey events [--pid N] [--json] [--capture-size BYTES]',
  help: [
    '      --pid N               only events of process N',
    '      --json                one JSON object a line on stdout (messages go to stderr)',
    '      --capture-size BYTES  payload bytes captured per call (default 256, max 4096)',
  ].join('\n'),
  options: {
    pid: { type: 'string' },
    json: { type: 'boolean' },
    'capture-size': { type: 'string' },
  },
  async run({ values }) {
    const pid = intOption(values.pid, 'pid', 1);
    const json = values.json === true;
    const stats: DecodeStats = { records: 0, malformed: 0, unknownOp: 0 };
    let cap: Capture | undefined = undefined;
    const onBatch = (buf: Buffer) => {
      if (!cap) return;
      const c = cap;
      let out = '';
      decodeBatch(
        buf,
        c.monoBase,
        (e) => {
          if (pid !== undefined && e.pid !== pid) return;
          out += json ? jsonLine(c, e) : textLine(c, e);
        },
        stats,
      );
      if (out) process.stdout.write(out);
    };
    cap = Capture.open({
      captureSize: intOption(values['capture-size'], 'capture-size'),
      pids: pid !== undefined ? [pid] : undefined,
      onBatch,
    });
    const attached = cap.programs.filter((p) => p.attached).length;
    process.stderr.write(
      `osprey: capturing TCP traffic${pid ? ` of pid ${pid}` : ' of every process'} (${attached}/${cap.programs.length} tracepoints attached); Ctrl-C to stop\n`,
    );
    for (const p of cap.programs.filter((p) => !p.attached)) {
      process.stderr.write(`osprey: warning: ${p.tracepoint} not attached: ${p.error}\n`);
    }
    await untilSignal();
    await cap.close();
    const c = stats;
    process.stderr.write(`osprey: ${c.records} events${c.malformed ? `, ${c.malformed} malformed batches` : ''}\n`);
    await flushStdout();
    return 0;
  },
};

function jsonLine(cap: Capture, e: KernelEvent): string {
  const o: Record<string, unknown> = {
    ts: cap.unixNano(e.ts).toString(),
    pid: e.pid,
    tid: e.tid,
    comm: e.comm,
    op: e.op,
    fd: e.fd,
    conn: e.connId,
    local: formatAddr(e.family, e.laddr, e.lport),
    remote: formatAddr(e.family, e.raddr, e.rport),
    bytes: e.bytes,
    data: e.data.toString('latin1'),
    durNs: e.tsEnd - e.ts,
  };
  if (e.flags) o.flags = flagNames(e.flags);
  return `${JSON.stringify(o)}\n`;
}

function flagNames(f: number): string[] {
  return Object.entries(Flag)
    .filter(([, bit]) => f & bit)
    .map(([name]) => name);
}

function textLine(cap: Capture, e: KernelEvent): string {
  const t = new Date(Number(cap.unixNano(e.ts) / 1_000_000n)).toISOString().slice(11, 23);
  const arrow = e.op === 'recv' || e.op === 'accept' ? '<-' : '->';
  const d = e.data;
  const data = d.length ? ` ${JSON.stringify(d.toString('latin1').slice(0, 80))}${d.length > 80 || e.bytes > d.length ? '…' : ''}` : '';
  const flags = e.flags ? ` [${flagNames(e.flags).join(',')}]` : '';
  return `${t} ${e.comm}[${e.pid}/${e.tid}] ${e.op.padEnd(7)} ${formatAddr(e.family, e.laddr, e.lport)} ${arrow} ${formatAddr(e.family, e.raddr, e.rport)} ${e.bytes}B${flags}${data}\n`;
}
