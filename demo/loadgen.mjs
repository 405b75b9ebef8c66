#!/usr/bin/env node
// Demo load generator: a plain HTTP client process (no dependencies, no tracing).
//
// Usage: node loadgen.mjs [--url URL] [--rate N] [--duration SECONDS] [--quiet]
//   --url       target base URL (default env TARGET_URL or http://127.0.0.1:8080)
//   --rate      requests per second (default 20)
//   --duration  stop after this many seconds (default 0 = run until SIGTERM/SIGINT)
// Prints a one-line JSON count summary to stdout on SIGTERM/SIGINT or when --duration ends,
// and (unless --quiet) a short progress line to stderr every 30 s.
//
// Mix: 50% GET /api/users/<id> (skewed ids), 15% GET /, 15% GET /api/checkout,
//      5% GET /api/users/<unknown id> (404), 5% GET /api/slow, 5% GET /api/error (502),
//      5% GET /static/index.html (nginx sendfile).
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    rate: { type: 'string', default: '20' },
    duration: { type: 'string', default: '0' },
    quiet: { type: 'boolean', default: false },
  },
});
const target = new URL(values.url ?? process.env.TARGET_URL ?? 'http://127.0.0.1:8080');
const rate = Number(values.rate);
const duration = Number(values.duration);
if (!(rate > 0) || !(duration >= 0)) {
  process.stderr.write('loadgen: --rate must be > 0 and --duration >= 0\n');
  process.exit(2);
}

const MAX_IN_FLIGHT = 64;
const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

// Skewed user ids: a few hot users, a long tail.
const userId = () => 1 + Math.floor(100 * Math.random() ** 2);
const mix = [
  [50, 'users', () => `/api/users/${userId()}`],
  [15, 'home', () => '/'],
  [15, 'checkout', () => '/api/checkout'],
  [5, 'users_404', () => `/api/users/${20000 + Math.floor(Math.random() * 1000)}`],
  [5, 'slow', () => '/api/slow'],
  [5, 'error', () => '/api/error'],
  [5, 'static', () => '/static/index.html'],
];
const totalWeight = mix.reduce((a, [w]) => a + w, 0);
function pick() {
  let r = Math.random() * totalWeight;
  for (const entry of mix) {
    r -= entry[0];
    if (r < 0) return entry;
  }
  return mix[0];
}

const counts = { sent: 0, ok: 0, failed: 0, skipped: 0, byKind: {}, byStatus: {} };
let inFlight = 0;
const startedAt = Date.now();

function bump(obj, key) {
  obj[key] = (obj[key] ?? 0) + 1;
}

function fire() {
  if (inFlight >= MAX_IN_FLIGHT) {
    counts.skipped++;
    return;
  }
  const [, kind, path] = pick();
  inFlight++;
  counts.sent++;
  bump(counts.byKind, kind);
  const done = (status) => {
    inFlight--;
    bump(counts.byStatus, String(status));
    if (typeof status === 'number' && status < 400) counts.ok++;
    else counts.failed++;
  };
  const req = http.request(
    { hostname: target.hostname, port: target.port || 80, path: path(), method: 'GET', agent, timeout: 15_000, headers: { 'User-Agent': 'osprey-demo-loadgen/1.0' } },
    (res) => {
      res.resume();
      res.on('end', () => done(res.statusCode ?? 0));
      res.on('error', () => done('error'));
    },
  );
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', () => done('error'));
  req.end();
}

// Fixed-rate scheduler with an accumulator so any rate (fractional too) is honoured on average.
const TICK_MS = 10;
let credit = 0;
let last = performance.now();
const ticker = setInterval(() => {
  const now = performance.now();
  credit += ((now - last) / 1000) * rate;
  last = now;
  while (credit >= 1) {
    credit -= 1;
    fire();
  }
}, TICK_MS);

const progress = values.quiet
  ? undefined
  : setInterval(() => process.stderr.write(`loadgen: ${counts.sent} sent, ${counts.ok} ok, ${counts.failed} failed\n`), 30_000);
progress?.unref();

function finish() {
  clearInterval(ticker);
  if (progress) clearInterval(progress);
  const summary = { ...counts, inFlight, seconds: Math.round((Date.now() - startedAt) / 100) / 10, rate, target: target.origin };
  process.stdout.write(`loadgen: summary ${JSON.stringify(summary)}\n`, () => process.exit(0));
}
process.on('SIGTERM', finish);
process.on('SIGINT', finish);
if (duration > 0) setTimeout(finish, duration * 1000);
process.stderr.write(`loadgen: ${rate} req/s to ${target.origin}${duration > 0 ? ` for ${duration}s` : ''}\n`);
