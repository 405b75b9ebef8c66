// The demo chain for real: nginx -> node frontend -> python backend, driven with curl.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startChain, type Chain } from './chain.js';
import { nginxConfig } from './nginx.js';
import { isAlive } from '../proc/index.js';

const run = promisify(execFile);

interface CurlResult {
  status: number;
  body: string;
  ms: number;
}

async function curl(url: string): Promise<CurlResult> {
  const marker = '\n__CURL__';
  const { stdout } = await run('curl', ['-sS', '--max-time', '10', '-w', `${marker}%{http_code} %{time_total}`, url]);
  const at = stdout.lastIndexOf(marker);
  const [code, secs] = stdout.slice(at + marker.length).split(' ');
  return { status: Number(code), body: stdout.slice(0, at), ms: Number(secs) * 1000 };
}

void describe('demo chain (nginx -> node -> python)', { timeout: 30_000 }, () => {
  let chain: Chain | undefined;
  let dataDir = '';
  const logs: string[] = [];

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'osprey-demo-test-'));
    chain = await startChain({ dataDir, log: (l) => logs.push(l) });
  });

  after(async () => {
    await chain?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const url = (path: string): string => `http://127.0.0.1:${chain?.proxyPort}${path}`;

  void it('runs real processes on distinct ports, nginx with master and worker', () => {
    assert.ok(chain);
    const ports = new Set([chain.proxyPort, chain.frontendPort, chain.backendPort]);
    assert.equal(ports.size, 3);
    assert.ok(chain.pids.nginx.length >= 2, `nginx pids ${chain.pids.nginx.join(',')}`);
    for (const pid of [...chain.pids.nginx, chain.pids.node, chain.pids.python]) assert.ok(isAlive(pid), `pid ${pid} alive`);
    const comm = (pid: number): string => readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    assert.equal(comm(chain.pids.node), 'node');
    assert.match(comm(chain.pids.python), /^python/);
    for (const pid of chain.pids.nginx) assert.equal(comm(pid), 'nginx');
    // The services carry their service name in their environment, nothing else.
    const environ = readFileSync(`/proc/${chain.pids.python}/environ`, 'utf8').split('\0');
    assert.ok(environ.includes('OTEL_SERVICE_NAME=backend'));
  });

  void it('passes /chain/<path> through every hop unchanged', async () => {
    const r = await curl(url('/chain/abc'));
    assert.equal(r.status, 200, r.body);
    const body = JSON.parse(r.body) as { path: string; backend: { service: string; path: string } };
    assert.equal(body.path, '/chain/abc');
    assert.equal(body.backend.service, 'backend');
    assert.equal(body.backend.path, '/chain/abc');
  });

  void it('honours ?sleep=N at the backend', async () => {
    const r = await curl(url('/chain/sleepy-1?sleep=200'));
    assert.equal(r.status, 200, r.body);
    assert.ok(r.ms >= 200, `took ${r.ms} ms`);
  });

  void it('serves /api/users/42 as JSON', async () => {
    const r = await curl(url('/api/users/42'));
    assert.equal(r.status, 200, r.body);
    const body = JSON.parse(r.body) as { user: { id: number; name: string } };
    assert.equal(body.user.id, 42);
    assert.equal(typeof body.user.name, 'string');
  });

  void it('turns a backend 500 into a 502 on /api/error', async () => {
    const r = await curl(url('/api/error'));
    assert.equal(r.status, 502, r.body);
    assert.equal((JSON.parse(r.body) as { backendStatus: number }).backendStatus, 500);
  });

  void it('takes at least 200 ms on /api/slow', async () => {
    const r = await curl(url('/api/slow'));
    assert.equal(r.status, 200, r.body);
    assert.ok(r.ms >= 200, `took ${r.ms} ms`);
  });

  void it('calls the backend twice on /api/checkout and serves static files', async () => {
    const r = await curl(url('/api/checkout'));
    assert.equal(r.status, 200, r.body);
    const body = JSON.parse(r.body) as { user: { id: number }; order: { status: string } };
    assert.equal(body.order.status, 'created');
    const s = await curl(url('/static/big.txt'));
    assert.equal(s.status, 200);
    assert.equal(s.body.length, 256 * 1024);
  });

  void it('stops every process, nginx workers included', async () => {
    assert.ok(chain);
    const pids = [...chain.pids.nginx, chain.pids.node, chain.pids.python];
    await chain.stop();
    await chain.stop(); // idempotent
    for (const pid of pids) assert.equal(isAlive(pid), false, `pid ${pid} still alive`);
    await assert.rejects(curl(url('/chain/after-stop')));
  });
});

void describe('nginxConfig', () => {
  void it('keeps every path inside the prefix and keeps upstream connections alive', () => {
    const conf = nginxConfig({ listenPort: 8080, upstreamPort: 8081, prefix: '/tmp/px', staticRoot: '/tmp/st' });
    assert.match(conf, /daemon off;/);
    assert.match(conf, /worker_processes 1;/);
    assert.match(conf, /pid \/tmp\/px\/nginx\.pid;/);
    assert.match(conf, /keepalive 16;/);
    assert.match(conf, /proxy_http_version 1\.1;/);
    assert.match(conf, /proxy_set_header Connection "";/);
    assert.match(conf, /listen 127\.0\.0\.1:8080;/);
    assert.match(conf, /alias \/tmp\/st\/;/);
    for (const m of conf.matchAll(/(?:_path|_log|pid|lock_file) (\/\S+?)[ ;]/g)) assert.ok(m[1]?.startsWith('/tmp/px/'), m[0]);
    assert.doesNotMatch(conf, /\/var\//);
  });
});
