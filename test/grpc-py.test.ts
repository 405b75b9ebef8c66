// grpcio (PyPI, in a venv cached under node_modules/.cache/osprey-py) server and client,
// unmodified, insecure (h2c): unary calls, server, client and bidirectional streaming (the kinds of
// GRPC_KINDS in peer-matrix.ts), at concurrency 1 and 32 (a thread pool of callers on one channel).
// Every call has a unique method name; each is one linked server/client pair with rpc.* attributes,
// 0 wrong parents. Over TLS grpcio uses the BoringSSL linked into its own extension module without
// any symbol table: Osprey cannot probe it (README, Known limits), and the test holds it to that:
// the ciphertext is counted and gives no span, never a wrong one.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnChild } from '../src/proc/index.js';
import { SpanCollector } from './agent-helpers.js';
import { freePort, run, type Proc } from './helpers.js';
import { checkGrpc, despiteDrops, grpcCalls } from './peer-matrix.js';
import { pythonVenv } from './py-venv.js';

const FIX = fileURLToPath(new URL('../../test/fixtures/h2/grpc-py.py', import.meta.url));

describe('grpcio (Python) server and client', { timeout: 600_000 }, () => {
  let python: string;
  let col: SpanCollector;
  let server: Proc;
  let port: number;

  before(async () => {
    python = pythonVenv('grpcio', ['grpcio==1.85.1']);
    col = new SpanCollector(300);
    port = await freePort();
    const s = await spawnChild(python, [FIX, 'serve', String(port)], { name: 'grpc-py' });
    await s.waitForOutput('stdout', /listening/, 30_000);
    server = s as unknown as Proc;
  });

  after(async () => {
    await server?.stop();
    await col?.close();
  });

  for (const conc of [1, 32]) {
    it(`insecure (h2c), concurrency ${conc}`, () => despiteDrops(col, async () => {
      const calls = grpcCalls(`py${conc}${Math.random().toString(36).slice(2, 8)}`, conc === 1 ? 2 : 16);
      const c = await run(python, [FIX, 'call', String(port), String(conc), ...calls.map((x) => x.path)], { timeoutMs: 60_000 });
      assert.equal(c.code, 0, c.stderr + c.stdout);
      assert.deepEqual(c.stdout.trim().split('\n'), calls.map((x) => `${x.code} ${x.messages}`));
      await checkGrpc(col, calls, server.pid, c.pid);
    }));
  }

  it('over TLS (BoringSSL inside cygrpc, no symbols): the documented limit, no spans, ciphertext counted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'osprey-grpcpy-'));
    const env = { TLS_CERT: join(dir, 'cert.pem'), TLS_KEY: join(dir, 'key.pem') };
    const r = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', env.TLS_KEY, '-out', env.TLS_CERT, '-days', '2', '-subj', '/CN=localhost']);
    assert.equal(r.code, 0, r.stderr);
    const tport = await freePort();
    const s = await spawnChild(python, [FIX, 'serve', String(tport)], { name: 'grpc-py-tls', env });
    try {
      await s.waitForOutput('stdout', /listening/, 30_000);
      col.agent.uprobes!.scan();
      const before = col.agent.capture!.counters();
      const calls = grpcCalls(`pytls${Math.random().toString(36).slice(2, 8)}`, 2);
      const c = await run(python, [FIX, 'call', String(tport), '1', ...calls.map((x) => x.path)], { timeoutMs: 60_000, env });
      assert.equal(c.code, 0, c.stderr + c.stdout);
      assert.deepEqual(c.stdout.trim().split('\n'), calls.map((x) => `${x.code} ${x.messages}`));
      await col.waitSpans('the ciphertext counted', () => col.agent.capture!.counters().tls_ciphertext_calls - before.tls_ciphertext_calls >= 2 * calls.length, 10_000);
      await new Promise((res) => setTimeout(res, 1000));
      const cygrpc = col.agent.uprobes!.files().filter((f) => f.path.includes('cygrpc'));
      assert.deepEqual(cygrpc, [], 'grpcio\'s extension module is not a probe target');
      const mine = col.spans.filter((x) => x.resource['process.pid'] === s.pid || x.resource['process.pid'] === c.pid);
      assert.deepEqual(mine.map((x) => x.name), [], 'no span from the TLS connection');
    } finally {
      await s.stop();
    }
  });
});
