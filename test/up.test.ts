// `osprey up` and the read commands as a user drives them: real processes,
// real curl, the CLI's public JSON, SIGINT, restart on the same data.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, OSPREY, ospreyUp as up, run, sleep, startServer, type OspreyUp, type Proc } from './helpers.js';

describe('osprey up', { timeout: 180_000 }, () => {
  let agent: OspreyUp;
  let py: Proc;
  let pyPort: number;
  const data = mkdtempSync(join(tmpdir(), 'osprey-data-'));
  const path = `/up-test/${Date.now()}`;
  let traceId = '';

  before(async () => {
    const port = await freePort();
    agent = await up(['--data', data, '--listen', `127.0.0.1:${port}`, '--no-ui']);
    pyPort = await freePort();
    py = await startServer('python3', ['-m', 'http.server', String(pyPort), '--bind', '127.0.0.1'], pyPort);
  });
  after(async () => {
    await py?.stop();
    if (agent && !agent.child.exited) await agent.stop();
  });

  it('a finished request is queryable within 5 s as span JSON', async () => {
    const c = await run('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${pyPort}${path}?token=s3cret&x=1`]);
    assert.equal(c.code, 0);
    const t0 = Date.now();
    let lines: Record<string, unknown>[] = [];
    while (Date.now() - t0 < 5000 && lines.length < 2) {
      const q = await run(OSPREY, ['query', '--server', agent.url, '--json', '--since', '1m', `{ span.url.path = "${path}" }`]);
      assert.equal(q.code, 0, q.stderr);
      lines = q.stdout.trim() ? q.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>) : [];
      if (lines.length < 2) await sleep(200);
    }
    const waited = Date.now() - t0;
    assert.equal(lines.length, 2, `server and client span within 5 s (waited ${waited} ms)`);
    const server = lines.find((s) => s.kind === 'server')!;
    const client = lines.find((s) => s.kind === 'client')!;
    for (const s of [server, client]) {
      assert.match(s.traceId as string, /^[0-9a-f]{32}$/);
      assert.match(s.spanId as string, /^[0-9a-f]{16}$/);
      assert.match(s.startTimeUnixNano as string, /^\d{19}$/);
      assert.equal(typeof s.durationNano, 'number');
      // 404: an error for the client, not for the server (semantic conventions)
      assert.equal(s.status, s.kind === 'client' ? 'error' : 'unset');
      assert.equal(s.name, 'GET /up-test/{id}');
      const res = s.resource as Record<string, unknown>;
      assert.equal(typeof res['process.pid'], 'number');
      const attrs = s.attributes as Record<string, unknown>;
      assert.equal(attrs['url.path'], path);
      assert.equal(attrs['url.query'], 'token=REDACTED&x=1');
      assert.equal(attrs['http.response.status_code'], 404);
    }
    assert.equal(server.parentSpanId, client.spanId);
    assert.equal(server.traceId, client.traceId);
    assert.equal((server.resource as Record<string, unknown>)['process.pid'], py.pid);
    assert.equal((server.resource as Record<string, unknown>)['service.name'], 'http');
    assert.equal((client.attributes as Record<string, unknown>)['url.full'], `http://127.0.0.1:${pyPort}${path}?token=REDACTED&x=1`);
    traceId = server.traceId as string;
  });

  it('trace, services, graph, status and the Tempo API answer', async () => {
    const t = await run(OSPREY, ['trace', '--server', agent.url, traceId]);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /^curl client GET \/up-test\/\{id\} 404 .*\n└─ http server GET \/up-test\/\{id\} 404 .*\[tuple\]/);
    const s = await run(OSPREY, ['services', '--server', agent.url, '--json']);
    const services = JSON.parse(s.stdout) as { service: string; requestCount: number }[];
    assert.ok(services.some((x) => x.service === 'http' && x.requestCount >= 1));
    const g = await run(OSPREY, ['graph', '--server', agent.url, '--json']);
    const edges = JSON.parse(g.stdout) as { caller: string; callee: string; count: number }[];
    assert.ok(edges.some((e) => e.caller === 'curl' && e.callee === 'http' && e.count >= 1), g.stdout);
    const st = await run(OSPREY, ['status', '--server', agent.url, '--json']);
    const status = JSON.parse(st.stdout) as { agent: string; programs: { attached: boolean }[]; counters: Record<string, number> };
    assert.equal(status.agent, 'running');
    assert.ok(status.programs.length >= 20 && status.programs.every((p) => p.attached));
    for (const k of ['ringbuf_dropped', 'payload_truncated', 'http1_malformed', 'linker_evicted', 'store_spansDropped']) assert.ok(k in status.counters, k);
    // what the agent itself costs
    const self = (status as unknown as { self: { cpuSeconds: number; rssBytes: number; heapUsedBytes: number } }).self;
    assert.ok(self.cpuSeconds > 0 && self.rssBytes > 20 * 2 ** 20 && self.heapUsedBytes > 0, JSON.stringify(self));
    const text = await run(OSPREY, ['status', '--server', agent.url]);
    assert.match(text.stdout, /cost: +[\d.]+ cores on average \([\d.]+ s of CPU\), RSS \d+ MB/);

    const search = (await (await fetch(`${agent.url}/api/search?q=${encodeURIComponent(`{ span.url.path = "${path}" }`)}`)).json()) as {
      traces: { traceID: string; rootServiceName: string }[];
    };
    assert.equal(search.traces[0]?.traceID, traceId);
    assert.equal(search.traces[0]?.rootServiceName, 'curl');
    const tr = (await (await fetch(`${agent.url}/api/traces/${traceId}`)).json()) as { batches: unknown[] };
    assert.equal(tr.batches.length, 2);
    assert.equal((await fetch(`${agent.url}/api/traces/${'0'.repeat(31)}1`)).status, 404);
    const metrics = await (await fetch(`${agent.url}/metrics`)).text();
    assert.match(metrics, /osprey_ringbuf_dropped_total 0/);
    assert.match(metrics, /^process_resident_memory_bytes \d+/m);
    assert.match(metrics, /^process_cpu_seconds_total [\d.]+/m);
  });

  it('bad input: a wrong TraceQL query is a clear error, the agent keeps running', async () => {
    const q = await run(OSPREY, ['query', '--server', agent.url, '{ span.x = }']);
    assert.equal(q.code, 2);
    assert.match(q.stderr, /invalid TraceQL/);
    const r = await fetch(`${agent.url}/api/search?q=${encodeURIComponent('{ nope')}`);
    assert.equal(r.status, 400);
    assert.match(((await r.json()) as { error: string }).error, /invalid TraceQL/);
    assert.equal((await fetch(`${agent.url}/api/echo`)).status, 200);
    const none = await run(OSPREY, ['query', '--server', agent.url, '--json', '{ span.url.path = "/never-requested" }']);
    assert.equal(none.code, 0);
    assert.equal(none.stdout, '');
  });

  it('a second agent on the same port fails with a clear message', async () => {
    const port = new URL(agent.url).port;
    const r = await run(OSPREY, ['up', '--memory', '--listen', `127.0.0.1:${port}`], { timeoutMs: 30000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already in use/);
  });

  it('SIGINT flushes and exits 0; the data survives a restart', async () => {
    assert.equal(await agent.stop(), 0, agent.err());
    const offline = await run(OSPREY, ['query', '--data', data, '--json', '--since', '10m', `{ span.url.path = "${path}" }`]);
    assert.equal(offline.code, 0, offline.stderr);
    assert.equal(offline.stdout.trim().split('\n').length, 2);
    agent = await up(['--data', data, '--listen', `127.0.0.1:${await freePort()}`, '--no-ui']);
    assert.match(agent.err(), /\(\d+ spans kept/);
    const t = await run(OSPREY, ['trace', '--server', agent.url, '--json', traceId]);
    assert.equal(t.code, 0, t.stderr);
    assert.equal(t.stdout.trim().split('\n').length, 2);
  });
});
