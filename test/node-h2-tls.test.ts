// HTTP/2 over TLS from real, unmodified peers through the OpenSSL uprobes: Node's
// http2.createSecureServer with http2.connect (OpenSSL inside /usr/bin/node, memory BIOs),
// and curl (libssl.so.3, nghttp2) with --http2 and --http1.1 against the Node server and a Go
// net/http h2 server (crypto/tls). Concurrency 1 and 32 (32 streams in flight on one
// connection for h2; 32 connections for curl --http1.1 --parallel); every request one linked
// server/client pair, 0 wrong parents.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnChild, type Child } from '../src/proc/index.js';
import { SpanCollector } from './agent-helpers.js';
import { buildGo, goToolchains } from './go-build.js';
import { freePort, run, startServer, waitFor, type Proc } from './helpers.js';
import { checkPairs, despiteDrops, type Expect, waitPairs } from './peer-matrix.js';

const FIX = (f: string): string => fileURLToPath(new URL(`../../test/fixtures/h2/${f}`, import.meta.url));
const ROUTES = [
  { prefix: 'hello', status: 200 },
  { prefix: 'missing', status: 404 },
  { prefix: 'slow', status: 200 },
];

function requests(tag: string, perRoute: number, extra: Partial<Expect>): Expect[] {
  const out: Expect[] = [];
  for (let i = 0; i < perRoute; i++) for (const r of ROUTES) out.push({ path: `/${r.prefix}/${tag}-${i}`, status: r.status, ...extra });
  return out;
}

describe('HTTP/2 over TLS: Node http2 and curl (OpenSSL uprobes)', { timeout: 300_000 }, () => {
  let col: SpanCollector;
  let node: Proc;
  let nodePort: number;
  let go: Proc;
  let goPort: number;
  // keeps libssl.so.3 mapped, so the file is attached before any short-lived curl runs
  let holder: Child;
  const attached = (pred: (path: string) => boolean): boolean => col.agent.uprobes!.files().some((f) => f.status === 'attached' && pred(f.path));

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'osprey-h2tls-'));
    const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
    const r = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1']);
    assert.equal(r.code, 0, r.stderr);
    const goBin = buildGo(resolve('test/fixtures/goh2/main.go'), goToolchains()[0]!);
    col = new SpanCollector(300, undefined, { uprobes: { scanMs: 300 } });
    holder = await spawnChild('python3', ['-c', 'import ssl, time; time.sleep(600)'], { name: 'libssl-holder' });
    nodePort = await freePort();
    node = await startServer('node', [FIX('node-h2-tls.cjs'), 'server', String(nodePort), cert, key], nodePort);
    goPort = await freePort();
    go = await startServer(goBin, ['serve', String(goPort)], goPort);
    await waitFor('node, libssl and the Go server attached', () => attached((p) => p.endsWith('/node')) && attached((p) => /\/libssl\.so/.test(p)) && attached((p) => p === goBin), 10_000);
  });

  after(async () => {
    await node?.stop();
    await go?.stop();
    await holder?.stop();
    await col?.close();
  });

  for (const conc of [1, 32]) {
    it(`Node http2.connect -> http2.createSecureServer, concurrency ${conc}`, () => despiteDrops(col, async () => {
      const reqs = requests(`node-c${conc}-${Math.random().toString(36).slice(2, 8)}`, conc === 1 ? 3 : 24, { serverPid: node.pid, version: '2' });
      const c = await run('node', [FIX('node-h2-tls.cjs'), 'client', String(nodePort), String(conc), ...reqs.map((r) => r.path)], { timeoutMs: 60_000 });
      assert.equal(c.code, 0, c.stderr);
      assert.deepEqual(c.stdout.trim().split('\n').map(Number), reqs.map((r) => r.status));
      for (const r of reqs) r.clientPid = c.pid;
      await waitPairs(col, reqs);
      checkPairs(col, reqs);
      for (const r of reqs) assert.equal(col.byPath(r.path).find((s) => s.kind === 'server')!.attributes['url.scheme'], 'https');
    }));
  }

  /** curl with every URL; --parallel for concurrency > 1 (h2: streams on one connection) */
  async function curl(flag: '--http2' | '--http1.1', port: number, conc: number, paths: string[]): Promise<{ pid: number; lines: string[] }> {
    const args = ['-sSk', flag, '-w', '%{http_version} %{response_code} %{url_effective}\\n'];
    if (conc > 1) args.push('--parallel', '--parallel-max', String(conc));
    for (const p of paths) args.push('-o', '/dev/null', `https://127.0.0.1:${port}${p}`);
    const c = await run('curl', args, { timeoutMs: 60_000 });
    assert.equal(c.code, 0, c.stderr);
    return { pid: c.pid, lines: c.stdout.trim().split('\n') };
  }

  for (const target of ['node', 'go'] as const) {
    for (const flag of ['--http2', '--http1.1'] as const) {
      for (const conc of [1, 32]) {
        it(`curl ${flag} -> ${target} over HTTPS, concurrency ${conc}`, () => despiteDrops(col, async () => {
          const srv = target === 'node' ? node : go;
          const port = target === 'node' ? nodePort : goPort;
          const version = flag === '--http2' ? '2' : '1.1';
          // Go answers 404/slow like Node; its server span is 1.1 or 2 as negotiated
          const reqs = requests(`curl-${target}${flag.slice(6)}-c${conc}-${Math.random().toString(36).slice(2, 8)}`, conc === 1 ? 2 : 16, { serverPid: srv.pid, version });
          const { pid, lines } = await curl(flag, port, conc, reqs.map((r) => r.path));
          const got = new Map(lines.map((l) => [new URL(l.split(' ')[2]!).pathname, l.split(' ').slice(0, 2).join(' ')]));
          for (const r of reqs) {
            assert.equal(got.get(r.path), `${flag === '--http2' ? '2' : '1.1'} ${r.status}`, r.path);
            r.clientPid = pid;
          }
          await waitPairs(col, reqs);
          checkPairs(col, reqs);
        }));
      }
    }
  }
});
