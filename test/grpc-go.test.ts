// grpc-go (google.golang.org/grpc from the Go module proxy, built with this machine's Go) server
// and client, unmodified: unary calls, an error status and server streaming, insecure (h2c) and
// over TLS (crypto/tls uprobes), at concurrency 1 and 32 (calls multiplexed on one channel).
// Every call has a unique method name, so its path identifies its spans; each call is one linked
// server/client pair with rpc.* attributes and the gRPC status, and 0 wrong parents.
// (grpc-go 1.85 needs Go >= 1.23: Debian's Go 1.19 cannot build it.)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { freePort, startProcess, type StartedProcess } from '../src/demo/processes.js';
import { SpanCollector } from './agent-helpers.js';
import { buildGoModule } from './go-module.js';
import { run } from './helpers.js';
import { pairOf, show, waitPairs } from './peer-matrix.js';

const KINDS = [
  { prefix: 'Say', code: 0, messages: 1 },
  { prefix: 'Fail', code: 3, messages: 0 },
  { prefix: 'Count', code: 0, messages: 3 },
  { prefix: 'Slow', code: 0, messages: 1 },
];

describe('grpc-go server and client: unary and server streaming, h2c and TLS', { timeout: 600_000 }, () => {
  let bin: string;
  let col: SpanCollector;
  const servers = new Map<string, { proc: StartedProcess; port: number }>();

  before(async () => {
    bin = buildGoModule(resolve('test/fixtures/grpcgo'), 'grpcgo', ['google.golang.org/grpc@v1.85.0', 'google.golang.org/protobuf@v1.36.12']);
    col = new SpanCollector(300, undefined, { uprobes: { scanMs: 3_600_000 } });
    for (const mode of ['plain', 'tls']) {
      const port = await freePort();
      servers.set(mode, { port, proc: await startProcess({ name: `grpcgo-${mode}`, cmd: bin, args: ['serve', String(port), ...(mode === 'tls' ? ['tls'] : [])], port }) });
    }
    col.agent.uprobes!.scan();
    const w = col.agent.uprobes!.files().find((f) => f.path === bin);
    assert.equal(w?.status, 'attached', JSON.stringify(w));
  });

  after(async () => {
    for (const s of servers.values()) await s.proc.stop();
    await col?.close();
  });

  for (const mode of ['plain', 'tls'] as const) {
    for (const conc of [1, 32]) {
      it(`${mode === 'tls' ? 'TLS' : 'insecure (h2c)'}, concurrency ${conc}`, async () => {
        const { port, proc } = servers.get(mode)!;
        const tag = `${mode}c${conc}${Math.random().toString(36).slice(2, 8)}`;
        const calls: { path: string; method: string; code: number; messages: number }[] = [];
        for (let i = 0; i < (conc === 1 ? 2 : 16); i++) {
          for (const k of KINDS) calls.push({ path: `/demo.Echo/${k.prefix}_${tag}_${i}`, method: `${k.prefix}_${tag}_${i}`, code: k.code, messages: k.messages });
        }
        const c = await run(bin, ['call', String(port), mode, String(conc), ...calls.map((x) => x.path)], { timeoutMs: 60_000 });
        assert.equal(c.code, 0, c.stderr + c.stdout);
        assert.deepEqual(c.stdout.trim().split('\n'), calls.map((x) => `${x.code} ${x.messages}`));
        await waitPairs(col, calls.map((x) => ({ path: x.path, status: 200, serverPid: proc.pid })));
        const clientById = new Map(col.spans.filter((s) => s.kind === 'client').map((s) => [s.spanId, s]));
        let wrong = 0;
        for (const x of calls) {
          const { server, client } = pairOf(col, x.path, proc.pid);
          assert.deepEqual([server.length, client.length], [1, 1], `${x.path}: ${show(col.byPath(x.path))}`);
          const [s, cl] = [server[0]!, client[0]!];
          const parent = clientById.get(s.parentSpanId);
          if (parent && parent.attributes['url.path'] !== x.path) wrong++;
          assert.equal(cl.resource['process.pid'], c.pid);
          for (const sp of [s, cl]) {
            assert.equal(sp.attributes['rpc.system'], 'grpc');
            assert.equal(sp.attributes['rpc.service'], 'demo.Echo');
            assert.equal(sp.attributes['rpc.method'], x.method);
            assert.equal(sp.attributes['rpc.grpc.status_code'], x.code, `${x.path} ${sp.kind}`);
            assert.equal(sp.attributes['http.request.method'], 'POST');
            assert.equal(sp.attributes['http.response.status_code'], 200);
            assert.equal(sp.attributes['network.protocol.version'], '2');
            assert.equal(sp.name, `demo.Echo/${x.method}`);
            assert.ok(sp.durationNano > 0 && sp.durationNano < 30e9);
          }
          assert.equal(cl.status, x.code === 0 ? 'unset' : 'error');
          assert.equal(s.status, 'unset', 'INVALID_ARGUMENT is the caller\'s error');
          assert.equal(s.parentSpanId, cl.spanId, `${x.path}: server span is its client span's child`);
          assert.equal(s.traceId, cl.traceId);
          assert.ok(cl.durationNano + 5e6 >= s.durationNano, `${x.path}: durations`);
          if (x.path.includes('/Slow_')) assert.ok(s.durationNano >= 18e6, `${x.path}: 20 ms handler, ${s.durationNano / 1e6} ms`);
        }
        assert.equal(wrong, 0, 'wrong parents');
      });
    }
  }
});
