// HTTP/2 over cleartext (h2c) from real, unmodified peers: Node's http2 server and client with
// concurrent streams on one connection, curl with prior knowledge (and a traceparent in its
// HEADERS), binary noise after a valid preface, and a connection that predates the agent
// (mid-stream join).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { SpanCollector } from './agent-helpers.js';
import { freePort, run, sleep, startServer, type Proc } from './helpers.js';
import { spawnChild } from '../src/proc/index.js';

const FIX = (f: string): string => fileURLToPath(new URL(`../../test/fixtures/h2/${f}`, import.meta.url));

describe('HTTP/2 (h2c) spans from real programs', { timeout: 180_000 }, () => {
  let col: SpanCollector;
  let node: Proc;
  let port: number;
  before(async () => {
    col = new SpanCollector(200);
    port = await freePort();
    node = await startServer('node', [FIX('node-h2c.cjs'), String(port)], port);
  });
  after(async () => {
    await node?.stop();
    await col?.close();
  });

  it('Node http2 client and server: concurrent streams on one connection, each a linked pair', async () => {
    const paths = ['/a/1', '/a/2', '/slow/3', '/big/4', '/fail/5'];
    const c = await run('node', [FIX('node-h2-client.cjs'), String(port), ...paths]);
    assert.match(c.stdout, /round1 10,10,10,100000,10/);
    await col.waitSpans('a server and a client span per stream', () => paths.every((p) => col.byPath(p).length === 2));
    for (const p of paths) {
      const server = col.byPath(p).find((s) => s.kind === 'server')!;
      const client = col.byPath(p).find((s) => s.kind === 'client')!;
      assert.equal(server.resource['process.pid'], node.pid);
      assert.equal(client.resource['process.pid'], c.pid);
      assert.equal(server.attributes['network.protocol.version'], '2');
      assert.equal(server.attributes['http.request.method'], 'GET');
      assert.equal(server.attributes['server.address'], '127.0.0.1');
      assert.equal(server.attributes['user_agent.original'], 'h2-test');
      const status = p.startsWith('/fail') ? 503 : 200;
      assert.equal(server.attributes['http.response.status_code'], status, p);
      assert.equal(client.attributes['http.response.status_code'], status, p);
      assert.equal(server.status, p.startsWith('/fail') ? 'error' : 'unset');
      assert.equal(server.parentSpanId, client.spanId, `${p}: the server span is the client's child`);
      assert.equal(server.attributes['osprey.link'], 'tuple');
      assert.equal(server.traceId, client.traceId);
    }
    const big = col.byPath('/big/4').find((s) => s.kind === 'server')!;
    assert.equal(big.attributes['http.response.body.size'], 100_000, 'DATA bytes counted though never shipped');
    const slow = col.byPath('/slow/3').find((s) => s.kind === 'server')!;
    assert.ok(slow.durationNano >= 45e6, `the slow stream lasts its 50 ms: ${slow.durationNano / 1e6} ms`);
    // never a credential
    const all = JSON.stringify(col.spans.map((s) => s.toInit()), (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
    assert.doesNotMatch(all, /sekret/);
  });

  it('curl --http2-prior-knowledge', async () => {
    // one URL per run: curl 7.88 fails a second request on a reused connection to Node's server
    // ('Error in the HTTP2 framing layer'), with or without the agent
    const pids = new Map<string, number>();
    for (const p of ['/curl/pk', '/curl/pk2']) {
      const c = await run('curl', ['-sS', '--http2-prior-knowledge', `http://127.0.0.1:${port}${p}`]);
      assert.equal(c.stdout, 'x'.repeat(10));
      pids.set(p, c.pid);
    }
    await col.waitSpans('curl spans', () => ['/curl/pk', '/curl/pk2'].every((p) => col.byPath(p).length === 2));
    for (const p of ['/curl/pk', '/curl/pk2']) {
      const client = col.byPath(p).find((s) => s.kind === 'client')!;
      const server = col.byPath(p).find((s) => s.kind === 'server')!;
      assert.equal(client.resource['process.pid'], pids.get(p));
      assert.equal(client.attributes['url.full'], `http://127.0.0.1:${port}${p}`);
      assert.equal(server.parentSpanId, client.spanId);
    }
  });

  it('traceparent in the HEADERS block: the server span joins the caller\'s trace', async () => {
    const traceId = Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join('');
    const parent = '00f067aa0ba902b7';
    const p = `/tp/${traceId.slice(0, 8)}`;
    const c = await run('curl', ['-sS', '--http2-prior-knowledge', '-H', `traceparent: 00-${traceId}-${parent}-01`, `http://127.0.0.1:${port}${p}`]);
    assert.equal(c.stdout, 'x'.repeat(10));
    await col.waitSpans('the traceparent spans', () => col.byPath(p).some((s) => s.kind === 'server'));
    const server = col.byPath(p).find((s) => s.kind === 'server')!;
    assert.equal(server.attributes['network.protocol.version'], '2');
    assert.equal(server.traceId, traceId, 'the caller\'s trace, read from the HPACK-decoded headers');
    assert.equal(server.parentSpanId, parent);
    assert.equal(server.attributes['osprey.link'], 'traceparent');
  });

  it('binary noise after a valid preface: counted, the agent goes on', async () => {
    const before = col.agent.http2.malformed;
    await new Promise<void>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]), Buffer.from([0, 0, 4, 9, 4, 0, 0, 0, 7, 1, 2, 3, 4])]));
        setTimeout(() => s.destroy(), 300);
      });
      s.on('close', () => resolve());
      s.on('error', () => undefined);
    });
    await col.waitSpans('the noise counted', () => col.agent.http2.malformed > before);
    // and the agent still traces
    await run('curl', ['-sS', '--http2-prior-knowledge', `http://127.0.0.1:${port}/after-noise`]);
    await col.waitSpans('a span after the noise', () => col.byPath('/after-noise').length === 2);
  });

  it('a connection that predates the agent: no wrong headers', async () => {
    // a first agent-free round opens the connection and fills both HPACK tables; the second
    // round on the same connection comes after a new agent started
    const p2 = await freePort();
    const srv = await startServer('node', [FIX('node-h2c.cjs'), String(p2)], p2);
    const client = await spawnChild('node', [FIX('node-h2-client.cjs'), String(p2), '/early/a', '/early/b'], { env: { HOLD_MS: '2500' } });
    try {
      await col.close();
      const late = new SpanCollector(200);
      try {
        await sleep(3500);
        assert.match(client.stdout(), /round2 10,10/);
        await sleep(1000);
        const mine = late.spans.filter((s) => s.resource['process.pid'] === srv.pid || s.resource['process.pid'] === client.pid);
        for (const s of mine) assert.ok(['/early/a', '/early/b'].includes(String(s.attributes['url.path'])), `only true paths: ${s.name}`);
      } finally {
        await late.close();
      }
    } finally {
      await client.stop();
      await srv.stop();
      col = new SpanCollector(200);
    }
  });
});
