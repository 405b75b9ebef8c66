// grpcio (PyPI, in a venv cached under node_modules/.cache/osprey-py) server and client,
// unmodified, insecure (h2c): unary calls, an error status and server streaming, at
// concurrency 1 and 32 (a thread pool of callers on one channel). Every call has a unique
// method name; each is one linked server/client pair with rpc.* attributes, 0 wrong parents.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { spawnChild } from '../src/proc/index.js';
import { SpanCollector } from './agent-helpers.js';
import { freePort, run, type Proc } from './helpers.js';
import { checkGrpc, grpcCalls } from './peer-matrix.js';
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
    it(`insecure (h2c), concurrency ${conc}`, async () => {
      const calls = grpcCalls(`py${conc}${Math.random().toString(36).slice(2, 8)}`, conc === 1 ? 2 : 16);
      const c = await run(python, [FIX, 'call', String(port), String(conc), ...calls.map((x) => x.path)], { timeoutMs: 60_000 });
      assert.equal(c.code, 0, c.stderr + c.stdout);
      assert.deepEqual(c.stdout.trim().split('\n'), calls.map((x) => `${x.code} ${x.messages}`));
      await checkGrpc(col, calls, server.pid, c.pid);
    });
  }
});
