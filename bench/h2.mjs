#!/usr/bin/env node
// What HTTP/2 costs the agent next to HTTP/1.1: one nginx serving the same small file over
// HTTP/1.1 and over HTTP/2, h2load (nghttp2) paced against each with the same clients and
// rate, without the agent and under `osprey up`. HTTP/1.1 exchanges are summarised in the
// kernel; HTTP/2 frames go to user space (DATA payloads cut out) for HPACK and stream state, so
// this is the price of that path. Plain (h2c prior knowledge on its own port vs HTTP/1.1) and
// with --tls also HTTPS (ALPN h2 vs http/1.1 on one port, plaintext from the libssl uprobes in
// nginx and h2load). Prints per request: the agent's CPU and the node's added CPU (busy jiffies
// of the whole machine minus the same run without the agent), and the ratio h2/h1. Both sides
// of every exchange are traced. One stream at a time per connection by default (--streams), so
// requests are comparable one for one. Median of --runs runs per cell. Over TLS each h2load
// run is a new process: its libssl calls are traced from the agent's next /proc scan (2 s), so
// the first part of a --tls cell has its server side alone; the plain cells trace both sides
// from the first request. On a machine shared with other work the agent's CPU includes what it
// spends on their traffic (it traces the whole node): compare cells of one run.
//   node bench/h2.mjs [--rate 2000] [--seconds 5] [--runs 3] [--connections 20] [--streams 1] [--tls]
// Needs root and h2load (Debian's nghttp2-client: make build installs it). Asserts nothing.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTracefs, NGINX, ospreyMode } from './lib/load.mjs';
import { cpuCell, cpuOver, freePort, installCleanup, log, run, startProcess } from './lib/proc.mjs';
import { option } from './lib/script.mjs';

const RATE = Number(option('rate', 2000));
const SECONDS = Number(option('seconds', 5));
const RUNS = Number(option('runs', 3));
const CONNS = Number(option('connections', 20));
const STREAMS = Number(option('streams', 1));
const TLS = process.argv.includes('--tls');
const BODY = `${'{"ok":true,"items":['.padEnd(780, 'x')}]}\n`;

async function startNginx(dir) {
  const [h1, h2c, https] = [await freePort(), await freePort(), await freePort()];
  const prefix = join(dir, 'nginx');
  mkdirSync(join(prefix, 'www'), { recursive: true });
  mkdirSync(join(prefix, 'tmp'), { recursive: true });
  writeFileSync(join(prefix, 'www', 'index.html'), BODY);
  const cert = join(prefix, 'cert.pem');
  const key = join(prefix, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  // `listen ... http2` without ssl is h2c with prior knowledge only: HTTP/1.1 gets its own port
  writeFileSync(
    join(prefix, 'nginx.conf'),
    `daemon off;
master_process off;
worker_processes 1;
pid ${prefix}/nginx.pid;
lock_file ${prefix}/nginx.lock;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${prefix}/tmp;
  proxy_temp_path ${prefix}/tmp;
  fastcgi_temp_path ${prefix}/tmp;
  uwsgi_temp_path ${prefix}/tmp;
  scgi_temp_path ${prefix}/tmp;
  default_type text/html;
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  http2_max_requests 1000000;
  server {
    listen 127.0.0.1:${h1};
    listen 127.0.0.1:${h2c} http2;
    listen 127.0.0.1:${https} ssl http2;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    root ${prefix}/www;
    location / { }
  }
}
`,
  );
  const child = await startProcess({ name: 'nginx', cmd: NGINX, args: ['-p', `${prefix}/`, '-c', `${prefix}/nginx.conf`, '-e', 'stderr'], env: { OTEL_SERVICE_NAME: 'bench-nginx' }, port: https, stopSignal: 'SIGQUIT', stopGraceMs: 3000 });
  const url = (port, scheme = 'http') => `${scheme}://127.0.0.1:${port}/index.html`;
  return {
    cells: {
      'plain/h1': { url: url(h1), h1: true },
      'plain/h2': { url: url(h2c), h1: false },
      ...(TLS ? { 'tls/h1': { url: url(https, 'https'), h1: true }, 'tls/h2': { url: url(https, 'https'), h1: false } } : {}),
    },
    stop: () => child.stop(),
  };
}

/** one h2load run: requests done, node busy seconds, agent seconds (NaN without one) */
const measure = (cell, agentPid) => cpuOver(() => h2load(cell), agentPid);

/** one h2load run on a cell: the requests it completed */
async function h2load(cell) {
  // --rps is per client; -D runs for that long; --h1 speaks HTTP/1.1 (ALPN http/1.1 over TLS)
  const args = ['-c', String(CONNS), '-m', String(STREAMS), '-D', String(SECONDS), '--rps', String(RATE / CONNS), ...(cell.h1 ? ['--h1'] : []), cell.url];
  const r = await run('h2load', args, { env: { OTEL_SERVICE_NAME: 'bench-h2load' }, timeoutMs: (SECONDS + 15) * 1000 });
  if (r.code === 127 || /ENOENT/.test(r.stderr ?? '')) throw new Error('h2load not found: it is in Debian\'s nghttp2-client (make build installs it)');
  if (r.code !== 0) throw new Error(`h2load exited ${r.code ?? r.signal}: ${(r.stderr + r.stdout).trim().slice(-500)}`);
  const m = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(r.stdout);
  if (!m) throw new Error(`cannot read h2load's output: ${r.stdout.trim().slice(-400)}`);
  const proto = /Application protocol: (\S+)/.exec(r.stdout)?.[1];
  const want = cell.h1 ? 'http/1.1' : cell.url.startsWith('https') ? 'h2' : 'h2c';
  if (proto !== want) throw new Error(`${cell.url}: h2load spoke ${proto}, not ${want}`);
  if (Number(m[3]) || Number(m[4])) log(`warning: ${cell.url}: ${m[3]} failed, ${m[4]} errored`);
  return Number(m[1]);
}

installCleanup();
ensureTracefs();
const dir = mkdtempSync(join(tmpdir(), 'osprey-h2-bench-'));
try {
  const nginx = await startNginx(dir);
  const names = Object.keys(nginx.cells);
  const cells = {};
  const cellRun = async (mode, name, agentPid) => {
    const xs = [];
    for (let i = 0; i < RUNS; i++) xs.push(await measure(nginx.cells[name], agentPid));
    cells[`${mode}/${name}`] = cpuCell(xs);
    log(`${mode}/${name}: ${JSON.stringify(cells[`${mode}/${name}`])}`);
  };
  for (const name of names) await cellRun('none', name);
  const osprey = ospreyMode({ dir });
  const session = await osprey.start();
  for (const name of names) await cellRun('osprey', name, session.pid);
  const counters = await session.sample();
  await session.stop();
  await nginx.stop();
  const added = (s) => cells[`osprey/${s}`].nodeUsPerReq - cells[`none/${s}`].nodeUsPerReq;
  const agent = (s) => cells[`osprey/${s}`].agentUsPerReq;
  const f = (x) => x.toFixed(1);
  console.log(`\nHTTP/2 vs HTTP/1.1: nginx small file, h2load paced at ${RATE}/s, ${CONNS} connections, ${STREAMS} stream(s) each, median of ${RUNS} x ${SECONDS}s`);
  console.log('cell      node CPU/req (none)  node CPU/req (osprey)  added node CPU/req  agent CPU/req');
  for (const s of names) {
    console.log(`${s.padEnd(8)}  ${f(cells[`none/${s}`].nodeUsPerReq).padStart(17)} us  ${f(cells[`osprey/${s}`].nodeUsPerReq).padStart(19)} us  ${f(added(s)).padStart(16)} us  ${f(agent(s)).padStart(10)} us`);
  }
  for (const t of TLS ? ['plain', 'tls'] : ['plain']) {
    console.log(`ratio ${t} h2/h1: agent CPU per request ${(agent(`${t}/h2`) / agent(`${t}/h1`)).toFixed(2)}, added node CPU per request ${(added(`${t}/h2`) / added(`${t}/h1`)).toFixed(2)}`);
  }
  const h2 = Object.entries(counters).filter(([k]) => k.startsWith('http2_') || k === 'h2_lost' || k === 'exchanges');
  console.log(`counters: ${h2.map(([k, v]) => `${k} ${v}`).join(', ')}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
