// The read side of the CLI: query, trace, services, graph.
import { flushStdout, intOption, parseDuration, UsageError, type Command } from './cli.js';
import { openSource, sourceHelp, sourceOptions, type SpanSource } from './client.js';
import { fmtDuration, spanRows, table, traceTree } from './format.js';

async function withSource<T>(values: Record<string, unknown>, fn: (s: SpanSource) => Promise<T>): Promise<T> {
  const src = await openSource(values);
  try {
    return await fn(src);
  } finally {
    await src.close();
  }
}

function sinceOf(values: Record<string, unknown>, def: string): bigint {
  return parseDuration((values.since as string | undefined) ?? def);
}

export const queryCommand: Command = {
  name: 'query',
  summary: 'Find spans with TraceQL, newest first (or slowest first with --slowest).',
  usage: "osprey query [--server URL | --data DIR] [--since DUR] [--limit N] [--json] '<TraceQL>'",
  help: [
    sourceHelp,
    '      --since DUR           spans started within this window (default 1h; 30s, 5m, 1h)',
    '      --limit N             print at most N spans (default 20)',
    '      --slowest             order by duration, slowest first',
    '      --json                one span JSON object a line on stdout',
    '',
    'Examples:',
    "  osprey query '{ resource.service.name = \"backend\" && duration > 200ms }'",
    "  osprey query --since 5m --slowest '{ kind = server && status = error }'",
  ].join('\n'),
  options: { ...sourceOptions, since: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' }, slowest: { type: 'boolean' } },
  positionals: Infinity,
  async run({ values, positionals }) {
    if (positionals.length > 1) throw new UsageError('give the TraceQL query as one argument (quote it)');
    const q = positionals[0] ?? '{}';
    const limit = intOption(values.limit, 'limit') ?? 20;
    const since = sinceOf(values, '1h');
    const spans = await withSource(values, (s) => s.spans(q, since, limit, values.slowest ? 'duration' : 'start'));
    if (values.json) {
      process.stdout.write(spans.map((s) => `${JSON.stringify(s)}\n`).join(''));
    } else if (spans.length) {
      process.stdout.write(spanRows(spans));
    } else {
      process.stderr.write('no matching spans\n');
    }
    await flushStdout();
    return 0;
  },
};

export const traceCommand: Command = {
  name: 'trace',
  summary: 'Show one trace as a tree: who called whom, durations, offsets and how each span was linked.',
  usage: 'osprey trace [--server URL | --data DIR] [--json] <trace-id>',
  help: [sourceHelp, '      --json                the trace\'s spans as JSON, one a line'].join('\n'),
  options: { ...sourceOptions, json: { type: 'boolean' } },
  positionals: Infinity,
  async run({ values, positionals }) {
    const id = positionals[0];
    if (!id || positionals.length > 1) throw new UsageError('give one trace id');
    if (!/^[0-9a-fA-F]{1,32}$/.test(id)) throw new UsageError(`invalid trace id "${id.length > 80 ? `${id.slice(0, 80)}…` : id}": a trace id is up to 32 hex characters (0-9, a-f)`);
    const spans = await withSource(values, (s) => s.trace(id));
    if (!spans) {
      process.stderr.write(`osprey: trace ${id} not found\n`);
      return 1;
    }
    process.stdout.write(values.json ? spans.map((s) => `${JSON.stringify(s)}\n`).join('') : traceTree(spans));
    await flushStdout();
    return 0;
  },
};

export const servicesCommand: Command = {
  name: 'services',
  summary: 'Rate, error % and p50/p95/p99 latency per service (RED), from server spans; percentiles estimated from latency buckets.',
  usage: 'osprey services [--server URL | --data DIR] [--since DUR] [--json]',
  help: [sourceHelp, '      --since DUR           window (default 15m)', '      --json                JSON'].join('\n'),
  options: { ...sourceOptions, since: { type: 'string' }, json: { type: 'boolean' } },
  async run({ values }) {
    const since = sinceOf(values, '15m');
    const svc = await withSource(values, (s) => s.services(since));
    if (values.json) process.stdout.write(`${JSON.stringify(svc)}\n`);
    else if (!svc.length) process.stderr.write('no services seen in this window\n');
    else
      process.stdout.write(
        table(
          // ~: percentiles are estimated from latency buckets (ServiceStats.quantiles)
          ['SERVICE', 'REQUESTS', 'REQ/S', 'ERRORS', 'P50~', 'P95~', 'P99~'],
          svc.map((s) => [s.service, String(s.requestCount), s.ratePerSec.toFixed(2), `${s.errorPct.toFixed(1)}%`, fmtDuration(s.p50Ns), fmtDuration(s.p95Ns), fmtDuration(s.p99Ns)]),
        ),
      );
    await flushStdout();
    return 0;
  },
};

export const graphCommand: Command = {
  name: 'graph',
  summary: 'Service dependencies: caller -> callee edges with request counts, errors and latency (as /metrics pairs them).',
  usage: 'osprey graph [--server URL | --data DIR] [--since DUR] [--json]',
  help: [sourceHelp, '      --since DUR           window (default 15m)', '      --json                JSON'].join('\n'),
  options: { ...sourceOptions, since: { type: 'string' }, json: { type: 'boolean' } },
  async run({ values }) {
    const since = sinceOf(values, '15m');
    const edges = await withSource(values, (s) => s.edges(since));
    if (values.json) process.stdout.write(`${JSON.stringify(edges)}\n`);
    else if (!edges.length) process.stderr.write('no edges seen in this window\n');
    else
      process.stdout.write(
        table(
          ['CALLER', '', 'CALLEE', 'TYPE', 'REQUESTS', 'ERRORS', 'P50~', 'P95~'],
          edges.map((e) => [e.caller, '->', e.callee, e.connectionType || '-', String(e.count), `${e.errorPct.toFixed(1)}%`, fmtDuration(e.p50Ns), fmtDuration(e.p95Ns)]),
        ),
      );
    await flushStdout();
    return 0;
  },
};
