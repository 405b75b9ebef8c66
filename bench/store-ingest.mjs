#!/usr/bin/env node
// Store ingest benchmark: what storing a span costs, and how much memory the process needs
// while it stores millions of them.
//   node bench/store-ingest.mjs [--spans 2000000] [--path /tmp/osprey-ingest.duckdb] [--memory-limit 128MB]
//                               [--tick 200] [--flush-every 5000] [--uncompressed] [--events 0] [--threads N]
// Without --path the store is in memory. Spans look like the agent's HTTP spans
// (src/agent/spans.ts fillHttpSpan + osprey.link: 15-17 attributes, mostly repeated
// strings, a client and a server span per request). Prints one JSON line; asserts nothing.
// Peak RSS is the process's VmHWM (/proc/self/status).
// --events F: that fraction of server spans also carries an exception event (3 attributes) and a
// link to another trace, as OTLP spans from an instrumented app do (the agent's spans have none).

import { rmSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { procMem } from './lib/proc.mjs';
import { cpuUs, loadDist, option } from './lib/script.mjs';

const { DuckStore } = await loadDist('store/index.js');
const { Span } = await loadDist('model/index.js');

const args = process.argv.slice(2);
const N = Number(option('spans', 2_000_000));
const FLUSH_EVERY = Number(option('flush-every', 5000));
const PATH = option('path', undefined);
const MEMORY_LIMIT = option('memory-limit', undefined);
const UNCOMPRESSED = args.includes('--uncompressed');
const EVENTS = Number(option('events', 0));
const THREADS = option('threads', undefined);

const status = () => procMem(process.pid);

// ---- agent-shaped spans ---------------------------------------------------------------------
let seed = 7;
const rand = () => {
  seed = (seed * 1664525 + 1013904223) >>> 0;
  return seed / 4294967296;
};
// ids as the agent makes them (src/agent/ids.ts): hex of random bytes, flat strings
const idBytes = Buffer.alloc(16);
const hex = (n) => {
  for (let i = 0; i < n / 2; i++) idBytes[i] = Math.floor(rand() * 256);
  return idBytes.toString('hex', 0, n / 2);
};
const resources = Array.from({ length: 12 }, (_, i) => ({
  'service.name': `svc-${i}`,
  'process.pid': 1000 + i,
  'process.executable.name': i % 3 === 0 ? 'nginx' : 'node',
  'process.command_line': `node /srv/app${i}/server.js`,
  'host.name': 'node-1',
  'container.id': hex(64),
  'k8s.namespace.name': `ns-${i % 3}`,
  'k8s.pod.name': `svc-${i}-7d9f8b-x${i}`,
}));
const routes = ['/orders/{id}', '/users/{id}/cart', '/api/v1/items', '/health', '/checkout', '/api/v2/search'];
let clock = BigInt(Date.now() - 3_600_000) * 1_000_000n;

/** one request: the caller's client span and the callee's server span */
function request(out) {
  const traceId = hex(32);
  const route = routes[Math.floor(rand() * routes.length)];
  const path = route.replace('{id}', String(Math.floor(rand() * 100_000)));
  const status = rand() < 0.02 ? 503 : 200;
  const caller = resources[Math.floor(rand() * resources.length)];
  const callee = resources[Math.floor(rand() * resources.length)];
  const port = 40_000 + Math.floor(rand() * 20_000);
  const dur = Math.round(200_000 + rand() * 30_000_000);
  const clientId = hex(16);
  const client = {
    'http.request.method': 'GET',
    'url.path': path,
    'http.route': route,
    'network.protocol.name': 'http',
    'network.protocol.version': '1.1',
    'network.peer.address': '10.0.0.12',
    'network.peer.port': 8080,
    'server.address': callee['service.name'],
    'server.port': 8080,
    'url.full': `http://${callee['service.name']}:8080${path}?x=1`,
    'user_agent.original': 'Go-http-client/1.1',
    'http.response.status_code': status,
    'http.response.body.size': 1234,
  };
  if (status >= 400) client['error.type'] = String(status);
  client['osprey.link'] = 'thread';
  const server = {
    'http.request.method': 'GET',
    'url.path': path,
    'http.route': route,
    'network.protocol.name': 'http',
    'network.protocol.version': '1.1',
    'network.peer.address': '10.0.0.7',
    'network.peer.port': port,
    'url.query': 'x=1',
    'server.address': callee['service.name'],
    'server.port': 8080,
    'client.address': '10.0.0.7',
    'url.scheme': 'http',
    'user_agent.original': 'Go-http-client/1.1',
    'http.response.status_code': status,
    'http.response.body.size': 1234,
  };
  if (status >= 500) server['error.type'] = String(status);
  server['osprey.link'] = 'tuple';
  out.push(
    Span.from({
      traceId,
      spanId: clientId,
      parentSpanId: '',
      name: `GET ${route}`,
      kind: 'client',
      startTimeUnixNano: clock,
      durationNano: dur,
      status: status >= 400 ? 'error' : 'unset',
      resource: caller,
      attributes: client,
    }),
    Span.from({
      traceId,
      spanId: hex(16),
      parentSpanId: clientId,
      name: `GET ${route}`,
      kind: 'server',
      startTimeUnixNano: clock + 50_000n,
      durationNano: Math.max(0, dur - 100_000),
      status: status >= 500 ? 'error' : 'unset',
      resource: callee,
      attributes: server,
    }),
  );
  if (EVENTS > 0 && rand() < EVENTS) {
    const s = out[out.length - 1];
    s.events = [{ timeUnixNano: clock + 60_000n, name: 'exception', attributes: { 'exception.type': 'UpstreamError', 'exception.message': `upstream answered ${status}`, 'exception.escaped': false } }];
    s.links = [{ traceId: hex(32), spanId: hex(16), attributes: { 'link.reason': 'retry-of' } }];
  }
  clock += 1_700_000n; // ~2M spans over the hour before now
}

// ---- run ------------------------------------------------------------------------------------
// Spans arrive like the agent emits them: a few hundred per tick. The store's CPU is the
// process CPU (all threads) of generating and storing them, minus that of generating the
// same number and dropping them (measured first): like bench/pipeline.mjs, this charges
// the store for everything it causes, e.g. the garbage collector moving spans it holds.
const TICK = Number(option('tick', 200));
function generate(n, sink) {
  let made = 0;
  while (made < n) {
    const tick = [];
    while (tick.length < TICK) request(tick);
    if (made + tick.length > n) tick.length = n - made;
    made += tick.length;
    sink(tick);
  }
}
const baseSeed = seed;
const baseClock = clock;
let c0 = cpuUs();
generate(N, () => undefined);
const genCpu = cpuUs() - c0;
seed = baseSeed;
clock = baseClock;

if (PATH) for (const f of [PATH, `${PATH}.wal`]) rmSync(f, { force: true });
const before = status();
const store = await DuckStore.open({
  path: PATH,
  memoryLimit: MEMORY_LIMIT,
  compressInMemory: !UNCOMPRESSED,
  flushSpans: FLUSH_EVERY,
  threads: THREADS === undefined ? undefined : Number(THREADS),
  retention: { maxSpans: Infinity, maxAgeMs: Infinity, intervalMs: 0 },
});
const opened = status();
let peakRss = 0;
let sinceSample = 0;
const pendingFlushes = [];
c0 = cpuUs();
const t0 = performance.now();
// generation is synchronous; flushes run between ticks, as they would between agent ticks
let made = 0;
while (made < N) {
  const n = Math.min(FLUSH_EVERY, N - made);
  generate(n, (tick) => store.append(tick));
  made += n;
  if (store.stats().buffered >= FLUSH_EVERY) pendingFlushes.push(store.flush());
  await Promise.all(pendingFlushes.splice(0));
  sinceSample += n;
  if (sinceSample >= 100_000) {
    sinceSample = 0;
    peakRss = Math.max(peakRss, status().rssMb);
  }
}
await store.flush();
const totalCpu = cpuUs() - c0;
const wallMs = performance.now() - t0;
const st = store.stats();
const end = status();
await store.shutdown();
const r = (x, d = 2) => Number(x.toFixed(d));
console.log(
  JSON.stringify({
    spans: N,
    withEvents: EVENTS,
    store: PATH ? `file ${PATH}` : UNCOMPRESSED ? 'memory (uncompressed)' : 'memory',
    memoryLimit: MEMORY_LIMIT ?? (PATH ? 'default' : 'DuckDB default'),
    storeCpuUsPerSpan: r((totalCpu - genCpu) / N),
    generateCpuUsPerSpan: r(genCpu / N),
    spansPerSec: Math.round(N / (wallMs / 1000)),
    rows: st.rows,
    dropped: st.spansDropped,
    rejected: st.spansRejected,
    flushErrors: st.flushErrors,
    rssMb: { beforeOpen: r(before.rssMb, 0), afterOpen: r(opened.rssMb, 0), peakSampled: r(peakRss, 0), end: r(end.rssMb, 0) },
    peakRssMb: r(end.hwmMb, 0),
    cpus: availableParallelism(),
    load: loadavg().map((x) => r(x, 1)),
  }),
);
