#!/usr/bin/env node
// What TLS uprobes cost: one nginx serving the same small file over HTTP and over HTTPS
// (keep-alive), wrk paced against each, without the agent and under `osprey up`. Prints per
// request: the agent's CPU and the node's added CPU (busy jiffies of the whole machine minus
// the same run without the agent), and the ratio HTTPS (uprobes on libssl in nginx and wrk)
// to HTTP (syscall capture alone). Both sides of every exchange are traced (wrk links libssl
// too). Median of --runs runs per cell.
//   node bench/tls.mjs [--rate 2000] [--seconds 5] [--runs 3] [--connections 20]
// Needs root. Asserts nothing.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTracefs, NGINX, ospreyMode, wrkCpu } from './lib/load.mjs';
import { cpuCell, freePort, installCleanup, log, startProcess } from './lib/proc.mjs';
import { option } from './lib/script.mjs';

const RATE = Number(option('rate', 2000));
const SECONDS = Number(option('seconds', 5));
const RUNS = Number(option('runs', 3));
const CONNS = Number(option('connections', 20));
const BODY = `${'{"ok":true,"items":['.padEnd(780, 'x')}]}\n`;

async function startNginx(dir) {
  const [http, https] = [await freePort(), await freePort()];
  const prefix = join(dir, 'nginx');
  mkdirSync(join(prefix, 'www'), { recursive: true });
  mkdirSync(join(prefix, 'tmp'), { recursive: true });
  writeFileSync(join(prefix, 'www', 'index.html'), BODY);
  const cert = join(prefix, 'cert.pem');
  const key = join(prefix, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' });
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
  server {
    listen 127.0.0.1:${http};
    listen 127.0.0.1:${https} ssl;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    root ${prefix}/www;
    location / { }
  }
}
`,
  );
  const child = await startProcess({ name: 'nginx', cmd: NGINX, args: ['-p', `${prefix}/`, '-c', `${prefix}/nginx.conf`, '-e', 'stderr'], env: { OTEL_SERVICE_NAME: 'bench-nginx' }, port: https, stopSignal: 'SIGQUIT', stopGraceMs: 3000 });
  return { urls: { http: `http://127.0.0.1:${http}/index.html`, https: `https://127.0.0.1:${https}/index.html` }, stop: () => child.stop() };
}

/** one wrk run: requests, node busy seconds, agent seconds (NaN without one) */
const measure = (url, dir, agentPid) => wrkCpu({ url, dir, seconds: SECONDS, connections: CONNS, rate: RATE }, agentPid);

installCleanup();
ensureTracefs();
const dir = mkdtempSync(join(tmpdir(), 'osprey-tls-bench-'));
try {
  const nginx = await startNginx(dir);
  const cells = {};
  const run = async (mode, scheme, agentPid) => {
    const xs = [];
    for (let i = 0; i < RUNS; i++) xs.push(await measure(nginx.urls[scheme], dir, agentPid));
    cells[`${mode}/${scheme}`] = cpuCell(xs);
    log(`${mode}/${scheme}: ${JSON.stringify(cells[`${mode}/${scheme}`])}`);
  };
  for (const scheme of ['http', 'https']) await run('none', scheme);
  const osprey = ospreyMode({ dir });
  const session = await osprey.start();
  for (const scheme of ['http', 'https']) await run('osprey', scheme, session.pid);
  const counters = await session.sample();
  await session.stop();
  await nginx.stop();
  const added = (s) => cells[`osprey/${s}`].nodeUsPerReq - cells[`none/${s}`].nodeUsPerReq;
  const agent = (s) => cells[`osprey/${s}`].agentUsPerReq;
  const f = (x) => x.toFixed(1);
  console.log(`\nTLS uprobes vs plain capture: nginx small file, keep-alive, wrk paced at ${RATE}/s, ${CONNS} connections, median of ${RUNS} x ${SECONDS}s`);
  console.log('scheme  node CPU/req (none)  node CPU/req (osprey)  added node CPU/req  agent CPU/req');
  for (const s of ['http', 'https']) {
    console.log(`${s.padEnd(6)}  ${f(cells[`none/${s}`].nodeUsPerReq).padStart(17)} us  ${f(cells[`osprey/${s}`].nodeUsPerReq).padStart(19)} us  ${f(added(s)).padStart(16)} us  ${f(agent(s)).padStart(10)} us`);
  }
  console.log(`ratio https/http: agent CPU per request ${(agent('https') / agent('http')).toFixed(2)}, added node CPU per request ${(added('https') / added('http')).toFixed(2)}`);
  console.log(`kernel: exchanges ${counters.exchanges}, tls plaintext calls ${counters.tls_plaintext_calls}, unbound ${counters.tls_plaintext_unbound}, ciphertext calls skipped ${counters.tls_ciphertext_calls}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
