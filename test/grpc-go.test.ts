// grpc-go (google.golang.org/grpc from the Go module proxy, built with this machine's Go) server
// and client, unmodified: unary calls, server, client and bidirectional streaming (the kinds of
// GRPC_KINDS in peer-matrix.ts: a non-OK status among the unary, client- and bidirectional-
// streaming calls, streams the client holds open for a known time), insecure (h2c) and over TLS
// (crypto/tls uprobes), at concurrency 1 and 32 (calls multiplexed on one channel). Every call has
// a unique method name, so its path identifies its spans; each call is one linked server/client
// pair with rpc.* attributes and the gRPC status, and 0 wrong parents. (grpc-go 1.85 needs Go >=
// 1.23: Debian's Go 1.19 cannot build it.)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { freePort, startProcess, type StartedProcess } from '../src/demo/processes.js';
import { SpanCollector } from './agent-helpers.js';
import { buildGoModule } from './go-module.js';
import { run } from './helpers.js';
import { checkGrpc, despiteDrops, grpcCalls } from './peer-matrix.js';

describe('grpc-go server and client: unary and all three kinds of streaming, h2c and TLS', { timeout: 600_000 }, () => {
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
      it(`${mode === 'tls' ? 'TLS' : 'insecure (h2c)'}, concurrency ${conc}`, () => despiteDrops(col, async () => {
        const { port, proc } = servers.get(mode)!;
        const tag = `${mode}c${conc}${Math.random().toString(36).slice(2, 8)}`;
        const calls = grpcCalls(tag, conc === 1 ? 2 : 16);
        const c = await run(bin, ['call', String(port), mode, String(conc), ...calls.map((x) => x.path)], { timeoutMs: 60_000 });
        assert.equal(c.code, 0, c.stderr + c.stdout);
        assert.deepEqual(c.stdout.trim().split('\n'), calls.map((x) => `${x.code} ${x.messages}`));
        await checkGrpc(col, calls, proc.pid, c.pid);
      }));
    }
  }
});
