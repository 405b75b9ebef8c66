// Bad input on every public surface, against a real `osprey up`: spans are stored first
// (real curl against a real server), then every HTTP endpoint and CLI command gets malformed
// input. Each must answer with a clear error (HTTP: status, JSON message, Allow on 405; CLI: one
// `osprey: ...` line on stderr, exit code != 0, no stack trace), every refusal is counted, and
// afterwards the agent still answers and the stored spans are all still there.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, run, startServer, waitFor, sleep, type Proc } from './helpers.js';

const OSPREY = fileURLToPath(new URL('../../bin/osprey', import.meta.url));

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** one raw request: the path goes on the wire exactly as written (no URL normalisation) */
function http(port: number, method: string, path: string, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** bytes that are not HTTP, straight on a socket: the whole answer */
function rawTcp(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('end', () => resolve(got));
    s.on('error', reject);
    s.write(bytes);
  });
}

interface HttpCase {
  method?: string;
  path: string;
  status: number;
  /** substring of the JSON `error` */
  error: string;
  /** the counter it must bump (undefined: not a bad request) */
  reason?: string;
  /** 405: the Allow header */
  allow?: string;
}

const ID = '0123456789abcdef0123456789abcdef';
const enc = encodeURIComponent;

const HTTP_CASES: HttpCase[] = [
  // unknown paths
  { path: '/nope', status: 404, error: 'no such endpoint: /nope', reason: 'unknown_path' },
  { path: '/api/osprey/nope', status: 404, error: 'no such endpoint', reason: 'unknown_path' },
  { path: '/api/tracez/abc', status: 404, error: 'no such endpoint', reason: 'unknown_path' },
  { path: '//api/echo', status: 404, error: 'no such endpoint: //api/echo', reason: 'unknown_path' },
  { path: '/api/search/tag//values', status: 404, error: 'no such endpoint', reason: 'unknown_path' },
  // wrong methods
  { method: 'POST', path: '/api/echo', status: 405, error: 'POST not allowed on /api/echo', reason: 'method_not_allowed', allow: 'GET, HEAD' },
  { method: 'DELETE', path: '/metrics', status: 405, error: 'DELETE not allowed', reason: 'method_not_allowed', allow: 'GET, HEAD' },
  { method: 'PUT', path: '/api/search?q={}', status: 405, error: 'PUT not allowed', reason: 'method_not_allowed', allow: 'GET, HEAD' },
  { method: 'POST', path: `/api/traces/${ID}`, status: 405, error: 'POST not allowed', reason: 'method_not_allowed', allow: 'GET, HEAD' },
  { method: 'POST', path: '/api/osprey/spans', status: 405, error: 'POST not allowed', reason: 'method_not_allowed', allow: 'GET, HEAD' },
  { method: 'POST', path: '/', status: 405, error: 'POST not allowed on /', reason: 'method_not_allowed', allow: 'GET, HEAD' },
  { method: 'GET', path: '/v1/traces', status: 405, error: 'GET not allowed on /v1/traces', reason: 'method_not_allowed', allow: 'POST' },
  // trace ids
  { path: '/api/traces/zz', status: 400, error: 'invalid trace id "zz"', reason: 'bad_parameter' },
  { path: `/api/traces/${ID}0`, status: 400, error: '33 hex characters, at most 32', reason: 'bad_parameter' },
  { path: `/api/v2/traces/${'a'.repeat(40)}`, status: 400, error: 'invalid trace id', reason: 'bad_parameter' },
  { path: `/api/osprey/traces/${ID.slice(0, 31)}g`, status: 400, error: 'invalid trace id', reason: 'bad_parameter' },
  { path: `/api/osprey/traces/${enc('xyz!')}`, status: 400, error: 'invalid trace id "xyz!"', reason: 'bad_parameter' },
  { path: `/api/traces/${ID}?start=zz`, status: 400, error: 'invalid start "zz"', reason: 'bad_parameter' },
  // a well-formed id that is not stored: a plain 404, not a bad request
  { path: `/api/traces/${ID}`, status: 404, error: `trace ${ID} not found` },
  { path: `/api/v2/traces/${ID}`, status: 404, error: 'not found' },
  // time windows
  { path: '/api/search?start=abc', status: 400, error: 'invalid start "abc"', reason: 'bad_parameter' },
  { path: '/api/search?end=-5', status: 400, error: 'invalid end "-5"', reason: 'bad_parameter' },
  { path: '/api/search?start=1.5', status: 400, error: 'invalid start "1.5"', reason: 'bad_parameter' },
  { path: '/api/search?start=2024-02-30T00:00:00Z', status: 400, error: 'invalid start', reason: 'bad_parameter' },
  { path: '/api/search?start=99999999999999999999', status: 400, error: 'start out of range', reason: 'bad_parameter' },
  { path: '/api/search?start=2000&end=1000', status: 400, error: 'start is after end', reason: 'bad_parameter' },
  { path: '/api/osprey/spans?since=bad', status: 400, error: 'invalid since "bad"', reason: 'bad_parameter' },
  { path: '/api/osprey/spans?since=-5m', status: 400, error: 'invalid since', reason: 'bad_parameter' },
  { path: '/api/osprey/services?start=zzz', status: 400, error: 'invalid start', reason: 'bad_parameter' },
  { path: '/api/osprey/graph?end=zzz', status: 400, error: 'invalid end', reason: 'bad_parameter' },
  { path: '/api/search/tag/span.x/values?start=zzz', status: 400, error: 'invalid start', reason: 'bad_parameter' },
  // counts and choices
  { path: '/api/search?limit=-1', status: 400, error: 'invalid limit "-1"', reason: 'bad_parameter' },
  { path: '/api/search?limit=abc', status: 400, error: 'invalid limit "abc"', reason: 'bad_parameter' },
  { path: '/api/osprey/spans?limit=1e3', status: 400, error: 'invalid limit "1e3"', reason: 'bad_parameter' },
  { path: '/api/search?spss=x', status: 400, error: 'invalid spss "x"', reason: 'bad_parameter' },
  { path: '/api/search?spss=-3', status: 400, error: 'invalid spss', reason: 'bad_parameter' },
  { path: '/api/osprey/spans?order=bogus', status: 400, error: 'invalid order "bogus"', reason: 'bad_parameter' },
  { path: '/api/search/tags?scope=bogus', status: 400, error: 'unknown scope "bogus"', reason: 'bad_parameter' },
  { path: '/api/v2/search/tags?scope=bogus', status: 400, error: 'unknown scope', reason: 'bad_parameter' },
  { path: '/api/v2/search/tag/name/values?limit=x', status: 400, error: 'invalid limit', reason: 'bad_parameter' },
  // TraceQL
  { path: `/api/search?q=${enc('{ nope')}`, status: 400, error: 'invalid TraceQL', reason: 'bad_parameter' },
  { path: `/api/osprey/spans?q=${enc('{ span.x = }')}`, status: 400, error: 'invalid TraceQL', reason: 'bad_parameter' },
  // a regular expression only the store can reject (was a 500)
  { path: `/api/search?q=${enc('{ name =~ "(" }')}`, status: 400, error: 'invalid regular expression', reason: 'bad_parameter' },
  // Tempo's legacy search parameters
  { path: `/api/search?tags=${enc('foo=')}`, status: 400, error: 'invalid tags', reason: 'bad_parameter' },
  { path: `/api/search?tags=${enc('a="x')}`, status: 400, error: 'unterminated quoted value', reason: 'bad_parameter' },
  { path: `/api/search?tags=${enc('=x')}`, status: 400, error: 'expected a key', reason: 'bad_parameter' },
  { path: `/api/search?tags=${enc('status=bogus')}`, status: 400, error: 'invalid status "bogus"', reason: 'bad_parameter' },
  { path: `/api/search?tags=${enc('a=b')}&q=${enc('{}')}`, status: 400, error: 'either q (TraceQL) or tags', reason: 'bad_parameter' },
  { path: '/api/search?minDuration=abc', status: 400, error: 'invalid minDuration "abc"', reason: 'bad_parameter' },
  { path: '/api/search?maxDuration=-1s', status: 400, error: 'invalid maxDuration', reason: 'bad_parameter' },
  { path: '/api/search?minDuration=2s&maxDuration=1s', status: 400, error: 'minDuration is greater than maxDuration', reason: 'bad_parameter' },
  // URL encoding
  { path: '/api/search?q=%zz', status: 400, error: 'malformed URL encoding in the query string', reason: 'bad_encoding' },
  { path: '/api/osprey/spans?q=%7B%FF', status: 400, error: 'malformed URL encoding', reason: 'bad_encoding' },
  { path: '/api/traces/%zz', status: 400, error: 'malformed URL encoding in the trace id', reason: 'bad_encoding' },
  { path: '/api/search/tag/%zz/values', status: 400, error: 'malformed URL encoding in the tag name', reason: 'bad_encoding' },
  { path: '/api/v2/search/tag/%E0%A4/values', status: 400, error: 'malformed URL encoding', reason: 'bad_encoding' },
  // TraceQL metrics (the OTLP receiver's own bad input: test/otlp-fuzz.test.ts, src/server/otlp-decode.test.ts)
  { path: `/api/metrics/query_range?q=${enc('{} | count() > 1')}`, status: 400, error: 'not a metrics query at 16', reason: 'bad_parameter' },
  { path: `/api/metrics/query_range?q=${enc('{} | rate()')}&step=-1s`, status: 400, error: 'invalid step', reason: 'bad_parameter' },
  { path: `/api/metrics/query_range?q=${enc('{} | rate() | count() > 1')}`, status: 400, error: 'only topk(n) or bottomk(n) may follow a metrics function at 14', reason: 'bad_parameter' },
  { path: '/api/metrics/query', status: 400, error: 'missing q', reason: 'bad_parameter' },
  { path: `/api/search?q=${enc('{} | rate()')}`, status: 400, error: 'this is a metrics query', reason: 'bad_parameter' },
  // a query string over the HTTP parser's 16 KB head limit
  { path: `/api/search?q=${'a'.repeat(20_000)}`, status: 431, error: 'too large', reason: 'too_large' },
];

interface CliCase {
  args: string[];
  code: number;
  /** substring of the first stderr line */
  error: string;
  /** a `fix:` line is expected */
  fix?: boolean;
}

describe('bad input on every public surface', { timeout: 300_000 }, () => {
  let child: ChildProcess;
  let agentErr = '';
  let url = '';
  let port = 0;
  let py: Proc;
  const data = mkdtempSync(join(tmpdir(), 'osprey-bad-input-'));
  const roDir = mkdtempSync(join(tmpdir(), 'osprey-ro-'));
  const aFile = join(data, 'a-file');
  let mounted = false;
  const path = `/bad-input-test/${Date.now()}`;
  let stored: { traceId: string; spanId: string }[] = [];

  const storedSpans = async () => {
    const r = await http(port, 'GET', `/api/osprey/spans?since=1h&q=${enc(`{ span.url.path = "${path}" }`)}`);
    assert.equal(r.status, 200, r.text);
    return ((JSON.parse(r.text) as { spans: { traceId: string; spanId: string }[] }).spans ?? []).map((s) => ({ traceId: s.traceId, spanId: s.spanId }));
  };

  before(async () => {
    writeFileSync(aFile, 'not a directory\n');
    // a read-only file system: root can write any directory whatever its mode
    const m = await run('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'osprey-ro', roDir]);
    assert.equal(m.code, 0, `mount a read-only tmpfs: ${m.stderr}`);
    mounted = true;

    port = await freePort();
    child = spawn(OSPREY, ['up', '--data', data, '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => (agentErr += d.toString()));
    child.stdout!.resume();
    const m2 = await waitFor('osprey up listening', () => /listening on (http:\/\/\S+)/.exec(agentErr) ?? (child.exitCode !== null ? ['', 'EXIT'] : undefined), 60_000);
    assert.notEqual(m2[1], 'EXIT', agentErr);
    url = m2[1]!;

    // store spans first: real curl against a real server
    const pyPort = await freePort();
    py = await startServer('python3', ['-m', 'http.server', String(pyPort), '--bind', '127.0.0.1'], pyPort);
    for (let i = 0; i < 3; i++) {
      const c = await run('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${pyPort}${path}`]);
      assert.equal(c.code, 0, c.stderr);
    }
    const deadline = Date.now() + 30_000;
    while ((stored = await storedSpans()).length < 6 && Date.now() < deadline) await sleep(200);
    assert.equal(stored.length, 6, 'three client and three server spans stored before the bad input');
  });

  after(async () => {
    await py?.stop();
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT');
      await exited;
    }
    if (mounted) await run('umount', [roDir]);
  });

  it('HTTP: every endpoint answers bad input with its status and a JSON message, and counts it', async () => {
    const expected: Record<string, number> = {};
    for (const c of HTTP_CASES) {
      const method = c.method ?? 'GET';
      const what = `${method} ${c.path.slice(0, 100)}`;
      const r = await http(port, method, c.path, method === 'POST' ? '{}' : undefined);
      assert.equal(r.status, c.status, `${what}: ${r.text}`);
      assert.match(String(r.headers['content-type']), /^application\/json/, what);
      const body = JSON.parse(r.text) as { error?: unknown; hint?: unknown };
      assert.equal(typeof body.error, 'string', `${what}: ${r.text}`);
      assert.ok((body.error as string).includes(c.error), `${what}: "${body.error as string}" should contain "${c.error}"`);
      assert.doesNotMatch(r.text, /\n\s+at |internal error/, what);
      if (c.status === 405) assert.equal(r.headers.allow, c.allow, `${what}: Allow`);
      if (c.reason) expected[c.reason] = (expected[c.reason] ?? 0) + 1;
    }
    // bytes that are not HTTP
    const garbage = await rawTcp(port, 'GARBAGE\r\n\r\n');
    assert.match(garbage, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(garbage, /"error":"malformed HTTP request/);
    expected.malformed_http = 1;
    // HEAD of a GET endpoint is allowed; the good path still works between the bad ones
    assert.equal((await http(port, 'HEAD', '/api/echo')).status, 200);
    assert.equal((await http(port, 'GET', '/api/echo')).text, 'echo');

    // every refusal counted, by reason, in /metrics and in the status counters
    const metrics = (await http(port, 'GET', '/metrics')).text;
    const status = JSON.parse((await http(port, 'GET', '/api/osprey/status')).text) as { counters: Record<string, number> };
    for (const reason of ['unknown_path', 'method_not_allowed', 'bad_parameter', 'bad_encoding', 'too_large', 'malformed_http']) {
      const n = expected[reason] ?? 0;
      assert.ok(n > 0, `the table covers ${reason}`);
      assert.match(metrics, new RegExp(`^osprey_http_bad_requests_total\\{reason="${reason}"\\} ${n}$`, 'm'), reason);
      assert.equal(status.counters[`http_bad_requests_${reason}`], n, reason);
    }
    assert.match(metrics, /^osprey_http_internal_errors_total 0$/m);
  });

  it('CLI: every command and flag answers bad input with one osprey: line and a non-zero exit', async () => {
    const nobody = `http://127.0.0.1:${await freePort()}`;
    const listen = `127.0.0.1:${await freePort()}`;
    const cases: CliCase[] = [
      { args: ['frobnicate'], code: 2, error: 'unknown command "frobnicate"' },
      { args: ['query', '--bogus'], code: 2, error: 'unknown option --bogus' },
      { args: ['services', 'extra'], code: 2, error: 'unexpected argument "extra"' },
      { args: ['query', '--server'], code: 2, error: '--server needs a value' },
      { args: ['up', '--data'], code: 2, error: '--data needs a value' },
      { args: ['events', '--json=yes'], code: 2, error: '--json takes no value' },
      // --listen
      { args: ['up', '--memory', '--listen', 'nohost'], code: 2, error: '--listen must be HOST:PORT' },
      { args: ['up', '--memory', '--listen', '1.2.3.4:99999'], code: 2, error: '--listen port must be 0-65535' },
      { args: ['up', '--memory', '--listen', ':abc'], code: 2, error: '--listen must be HOST:PORT' },
      { args: ['up', '--memory', '--listen', 'no-such-host.invalid:7070'], code: 2, error: 'does not resolve' },
      { args: ['up', '--memory', '--listen', `127.0.0.1:${port}`, '--capture-size', '99999'], code: 2, error: '--capture-size must be an integer from 0 to 4096' },
      { args: ['up', '--memory', '--listen', `127.0.0.1:${port}`, '--summarize', 'maybe'], code: 2, error: '--summarize must be on or off' },
      { args: ['up', '--memory', '--listen', `127.0.0.1:${port}`, '--tls', 'maybe'], code: 2, error: '--tls must be on or off' },
      { args: ['up', '--data', data, '--listen', `127.0.0.1:${port}`, '--store-wal', 'maybe'], code: 2, error: '--store-wal must be on or off' },
      { args: ['up', '--memory', '--store-wal', 'on'], code: 2, error: '--store-wal is for a store file' },
      { args: ['up', '--data', data, '--listen', `127.0.0.1:${port}`, '--store-sync', '10ms'], code: 2, error: '--store-sync must be at least 1s' },
      { args: ['up', '--data', data, '--listen', `127.0.0.1:${port}`, '--store-wal', 'on', '--store-sync', '5s'], code: 2, error: '--store-sync is for a store file without --store-wal on' },
      // --data that cannot be written
      { args: ['up', '--data', join(aFile, 'sub'), '--listen', listen], code: 1, error: 'a part of the path is a file', fix: true },
      { args: ['up', '--data', aFile, '--listen', listen], code: 1, error: 'cannot use --data', fix: true },
      { args: ['up', '--data', roDir, '--listen', listen], code: 1, error: 'read-only file system', fix: true },
      { args: ['up', '--data', join(roDir, 'sub'), '--listen', listen], code: 1, error: 'read-only file system', fix: true },
      { args: ['up', '--memory', '--data', data], code: 2, error: 'either --data DIR or --memory' },
      { args: ['up', '--memory', '--retention', '0s'], code: 2, error: '--retention must be at least 1s' },
      { args: ['up', '--memory', '--max-spans', '-3'], code: 2, error: '--max-spans must be an integer >= 1, got "-3"' },
      { args: ['up', '--memory', '--store-threads', '0'], code: 2, error: '--store-threads must be an integer from 1 to 1024, got "0"' },
      // the listener of the running agent: in use
      { args: ['up', '--memory', '--listen', `127.0.0.1:${port}`], code: 1, error: 'already in use', fix: true },
      // --server
      { args: ['query', '--server', 'notaurl'], code: 2, error: '--server must be a URL' },
      { args: ['query', '--server', 'ftp://x'], code: 2, error: '--server must be an http:// or https:// URL' },
      { args: ['query', '--server', nobody], code: 1, error: `no osprey answers at ${nobody} (connection refused)`, fix: true },
      { args: ['services', '--server', nobody], code: 1, error: 'no osprey answers', fix: true },
      { args: ['graph', '--server', nobody], code: 1, error: 'no osprey answers', fix: true },
      { args: ['trace', '--server', nobody, ID], code: 1, error: 'no osprey answers', fix: true },
      { args: ['query', '--server', `${url}/not-osprey`], code: 1, error: 'no such endpoint', fix: true },
      { args: ['status', '--server', nobody], code: 1, error: 'no osprey answers', fix: true },
      { args: ['status', '--server', 'notaurl'], code: 2, error: '--server must be a URL' },
      { args: ['query', '--data', '/nonexistent-osprey-dir'], code: 2, error: 'no such directory' },
      { args: ['query', '--data', data, '--server', url], code: 2, error: 'either --server or --data' },
      // trace ids
      { args: ['trace', '--server', url, 'zz'], code: 2, error: 'invalid trace id "zz"' },
      { args: ['trace', '--server', url, 'a'.repeat(40)], code: 2, error: 'invalid trace id' },
      { args: ['trace', '--server', url, 'xyz!'], code: 2, error: 'invalid trace id' },
      { args: ['trace', '--server', url], code: 2, error: 'give one trace id' },
      { args: ['trace', '--server', url, ID], code: 1, error: `trace ${ID} not found` },
      // --since, --limit, TraceQL
      { args: ['query', '--server', url, '--since', '5x'], code: 2, error: 'invalid duration "5x"' },
      { args: ['query', '--server', url, '--since', '-5m'], code: 2, error: 'invalid duration "-5m"' },
      { args: ['services', '--server', url, '--since', 'soon'], code: 2, error: 'invalid duration "soon"' },
      { args: ['query', '--server', url, '--limit', '-1'], code: 2, error: '--limit must be an integer >= 0, got "-1"' },
      { args: ['query', '--server', url, '--limit', 'abc'], code: 2, error: '--limit must be an integer' },
      { args: ['query', '--server', url, '--limit', '1e3'], code: 2, error: '--limit must be an integer' },
      { args: ['query', '--server', url, '{ nope'], code: 2, error: 'invalid TraceQL' },
      { args: ['query', '--server', url, '{ name =~ "(" }'], code: 2, error: 'invalid regular expression' },
      { args: ['events', '--pid', 'abc'], code: 2, error: '--pid must be an integer >= 1' },
    ];
    for (const c of cases) {
      const what = `osprey ${c.args.join(' ')}`;
      const r = await run(OSPREY, c.args, { timeoutMs: 60_000 });
      assert.equal(r.code, c.code, `${what}: exit ${r.code}\n${r.stderr}`);
      const lines = r.stderr.trimEnd().split('\n');
      const first = lines.find((l) => l.startsWith('osprey: ') && !/^osprey: (store|capture|tls|runtime context|node context):/.test(l)) ?? '';
      assert.ok(first.includes(c.error), `${what}: stderr should say "${c.error}":\n${r.stderr}`);
      assert.doesNotMatch(r.stderr, /\n\s+at |Error:|node:internal/, `${what}: no stack trace\n${r.stderr}`);
      if (c.fix) assert.match(r.stderr, /\n {2}fix: \S/, `${what}: a fix line`);
      if (c.code === 2) assert.match(r.stderr, /Run 'osprey (\w+ )?--help' for usage\.\n$/, what);
      // nothing but the message (and status's machine check) on the output
      if (c.args[0] !== 'status') assert.equal(r.stdout, '', `${what}: stdout`);
    }
    // `status` without an agent still says what this machine could run, after the error
    const st = await run(OSPREY, ['status', '--server', nobody, '--json']);
    assert.equal(st.code, 1);
    assert.equal((JSON.parse(st.stdout) as { agent: string }).agent, 'not running');
  });

  it('the agent is still running and everything stored before is still there', async () => {
    assert.equal(child.exitCode, null, agentErr);
    assert.equal((await http(port, 'GET', '/api/echo')).text, 'echo');
    const after = await storedSpans();
    const key = (s: { traceId: string; spanId: string }) => `${s.traceId}/${s.spanId}`;
    assert.deepEqual(new Set(after.map(key)), new Set(stored.map(key)));
    for (const traceId of new Set(stored.map((s) => s.traceId))) {
      const t = await run(OSPREY, ['trace', '--server', url, '--json', traceId]);
      assert.equal(t.code, 0, t.stderr);
      assert.equal(t.stdout.trim().split('\n').length, 2, t.stdout);
    }
    const st = await run(OSPREY, ['status', '--server', url]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /http_bad_requests_bad_parameter +[1-9]/);
    assert.doesNotMatch(agentErr, /\n\s+at |internal error|Unhandled/, agentErr);
  });
});
