// @grpc/grpc-js (npm) server and client, unmodified, in the gRPC peer matrix with grpc-go and
// grpcio: unary calls, server, client and bidirectional streaming (the kinds of GRPC_KINDS in
// peer-matrix.ts), insecure (h2c) and over TLS (Node's own OpenSSL, through the OpenSSL uprobes),
// at concurrency 1 and 32 (calls multiplexed on one channel). Every call has a unique method name,
// so its path identifies its spans; each call is one linked server/client pair with rpc.*
// attributes and the gRPC status, and 0 wrong parents. grpc-js serves only methods it registered,
// so each round starts a server for its own names. (test/grpc.test.ts covers a grpc-js chain of two
// services.)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnChild } from '../src/proc/index.js';
import { SpanCollector } from './agent-helpers.js';
import { freePort, run, waitFor } from './helpers.js';
import { checkGrpc, despiteDrops, grpcCalls } from './peer-matrix.js';

const FIX = fileURLToPath(new URL('../../test/fixtures/h2/grpc-js-matrix.cjs', import.meta.url));

describe('grpc-js server and client: unary and all three kinds of streaming, h2c and TLS', { timeout: 600_000 }, () => {
  let col: SpanCollector;
  let dir: string;
  let cert: string;
  let key: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'osprey-grpcjs-'));
    [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
    const r = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
    assert.equal(r.code, 0, r.stderr);
    col = new SpanCollector(300, undefined, { uprobes: { scanMs: 300 } });
    await waitFor('node attached', () => col.agent.uprobes!.files().some((f) => f.status === 'attached' && f.path.endsWith('/node')), 10_000);
  });

  after(async () => {
    await col?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const mode of ['plain', 'tls'] as const) {
    for (const conc of [1, 32]) {
      it(`${mode === 'tls' ? 'TLS' : 'insecure (h2c)'}, concurrency ${conc}`, () => despiteDrops(col, async () => {
        const calls = grpcCalls(`js${mode}c${conc}${Math.random().toString(36).slice(2, 8)}`, conc === 1 ? 2 : 16);
        const paths = calls.map((x) => x.path);
        const port = await freePort();
        const tlsArgs = mode === 'tls' ? [cert, key] : ['-', '-'];
        const server = await spawnChild('node', [FIX, 'serve', String(port), ...tlsArgs, ...paths], { name: `grpc-js-${mode}` });
        try {
          await server.waitForOutput('stdout', /listening/, 30_000);
          const c = await run('node', [FIX, 'call', String(port), String(conc), mode === 'tls' ? cert : '-', ...paths], { timeoutMs: 60_000 });
          assert.equal(c.code, 0, c.stderr + c.stdout);
          assert.deepEqual(c.stdout.trim().split('\n'), calls.map((x) => `${x.code} ${x.messages}`));
          await checkGrpc(col, calls, server.pid, c.pid);
          if (mode === 'tls') {
            for (const s of col.spans.filter((x) => paths.includes(String(x.attributes['url.path'])))) assert.equal(s.attributes['url.scheme'], 'https', `${s.kind} ${String(s.attributes['url.path'])}`);
          }
        } finally {
          await server.stop();
        }
      }));
    }
  }
});
