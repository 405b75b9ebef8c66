// gRPC from real, unmodified peers over insecure channels (h2c prior knowledge): a chain
// client -> service A -> service B with @grpc/grpc-js, unary calls, an error status and a
// server-streaming call; spans carry the rpc.* attributes and link across the hops.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { SpanCollector } from './agent-helpers.js';
import { freePort, run, type Proc } from './helpers.js';
import { spawnChild } from '../src/proc/index.js';
import type { Span } from '../src/model/index.js';

const FIX = (f: string): string => fileURLToPath(new URL(`../../test/fixtures/h2/${f}`, import.meta.url));

async function grpcServer(args: string[]): Promise<Proc> {
  const c = await spawnChild('node', [FIX('grpc-node.cjs'), 'server', ...args], { name: 'grpc-node' });
  await c.waitForOutput('stdout', /listening/, 15_000);
  return c as unknown as Proc;
}

describe('gRPC spans (grpc-js)', { timeout: 180_000 }, () => {
  let col: SpanCollector;
  let a: Proc;
  let b: Proc;
  let pa: number;
  before(async () => {
    col = new SpanCollector(200);
    pa = await freePort();
    const pb = await freePort();
    b = await grpcServer([String(pb)]);
    a = await grpcServer([String(pa), String(pb)]);
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await col?.close();
  });

  it('unary chain, an error status, server streaming: rpc attributes and links', async () => {
    const c = await run('node', [FIX('grpc-node.cjs'), 'client', String(pa)]);
    assert.equal(c.stdout.trim(), 'hi hello|error 3|n0+n1+n2');
    const rpc = (pid: number, kind: string, method: string): Span[] =>
      col.spans.filter((s) => s.resource['process.pid'] === pid && s.kind === kind && s.attributes['rpc.method'] === method);
    await col.waitSpans('the chain and the other calls', () =>
      rpc(c.pid, 'client', 'Say').length === 2 && rpc(a.pid, 'server', 'Say').length === 2 && rpc(a.pid, 'client', 'Say').length === 1 && rpc(b.pid, 'server', 'Say').length === 1 && rpc(a.pid, 'server', 'Count').length === 1 && rpc(c.pid, 'client', 'Count').length === 1,
    );
    for (const s of col.spans.filter((x) => x.attributes['rpc.system'] === 'grpc')) {
      assert.equal(s.attributes['rpc.service'], 'demo.Echo');
      assert.equal(s.name, `demo.Echo/${s.attributes['rpc.method']}`);
      assert.equal(s.attributes['network.protocol.version'], '2');
    }
    // the failed call: INVALID_ARGUMENT (3) is the client's error, not the server's
    const failedClient = rpc(c.pid, 'client', 'Say').find((s) => s.attributes['rpc.grpc.status_code'] === 3)!;
    assert.ok(failedClient, 'the failed call has status 3');
    assert.equal(failedClient.status, 'error');
    const failedServer = rpc(a.pid, 'server', 'Say').find((s) => s.attributes['rpc.grpc.status_code'] === 3)!;
    assert.equal(failedServer.status, 'unset');
    assert.equal(failedServer.parentSpanId, failedClient.spanId);
    // the chain: client -> A (tuple), A's call -> B (tuple); A's call has no parent within A
    // (the thread rule is off for HTTP/2, and grpc-js does not propagate traceparent)
    const okClient = rpc(c.pid, 'client', 'Say').find((s) => s.attributes['rpc.grpc.status_code'] === 0)!;
    const okA = rpc(a.pid, 'server', 'Say').find((s) => s.attributes['rpc.grpc.status_code'] === 0)!;
    const aOut = rpc(a.pid, 'client', 'Say')[0]!;
    const okB = rpc(b.pid, 'server', 'Say')[0]!;
    assert.equal(okA.parentSpanId, okClient.spanId);
    assert.equal(okA.attributes['osprey.link'], 'tuple');
    assert.equal(okB.parentSpanId, aOut.spanId);
    assert.equal(okB.attributes['rpc.grpc.status_code'], 0);
    assert.ok(okA.durationNano >= okB.durationNano, 'A lasts at least as long as its call to B');
    // server streaming: one span for the whole stream
    const countServer = rpc(a.pid, 'server', 'Count')[0]!;
    const countClient = rpc(c.pid, 'client', 'Count')[0]!;
    assert.equal(countServer.parentSpanId, countClient.spanId);
    assert.equal(countServer.attributes['rpc.grpc.status_code'], 0);
  });
});
