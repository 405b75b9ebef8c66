// No secret from a command line, a header or a URL is ever stored: real clients carrying
// unique secrets talk to a real slow server under `osprey up`, then everything the API and
// the CLI can return is fetched and searched for those secrets. The non-secret parts of the
// same command lines and requests must be there, so the test cannot pass by storing nothing.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, OSPREY, ospreyUp, run, sleep, startServer, type OspreyUp, type Proc } from './helpers.js';

// Debian's python, not a version-manager shim: a shim re-execs and would reset argv[0]
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

// a server that answers every GET after 1.5 s, so each client is still alive (and its
// /proc entry readable) while the agent sees its connection
const SLOW_SERVER = `
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Slow(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_GET(self):
        time.sleep(1.5)
        body = b'ok\\n'
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), Slow).serve_forever()
`;

// one raw HTTP/1.1 request; its command-line arguments are ignored (they carry the secrets
// under test), the request's own text comes from REQ_* variables (the environment is not stored)
const CLIENT = `
import os, socket, sys
port = int(os.environ['REQ_PORT'])
s = socket.create_connection(('127.0.0.1', port))
head = 'GET %s HTTP/1.1\\r\\nUser-Agent: %s\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n' % (
    os.environ['REQ_PATH'], os.environ.get('REQ_UA', 'client/1.0'), os.environ.get('REQ_HOST', '127.0.0.1:%d' % port))
s.sendall(head.encode('latin1'))
while s.recv(65536):
    pass
`;

/** a client run to its end with its own argv[0] and environment */
function client(cmd: string, args: string[], opts: { argv0?: string; env?: Record<string, string> } = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], argv0: opts.argv0, env: { ...process.env, ...opts.env } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), 30000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(t);
      resolve({ code, stderr });
    });
  });
}

type Json = Record<string, unknown>;

describe('no secret is stored', { timeout: 240_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'osprey-secrets-'));
  const data = join(dir, 'data');
  const serverPy = join(dir, 'slowsrv.py');
  const clientPy = join(dir, 'client.py');
  writeFileSync(serverPy, SLOW_SERVER);
  writeFileSync(clientPy, CLIENT);
  /** every secret, by what carried it; each a unique random string */
  const secrets = new Map<string, string>();
  const secret = (label: string): string => {
    const s = `Zq${randomBytes(12).toString('hex')}`;
    secrets.set(label, s);
    return s;
  };
  const run0 = randomBytes(4).toString('hex');
  const P = `/secret-test-${run0}`;
  let agent: OspreyUp;
  let srv: Proc;
  let port = 0;
  /** the spans of this test's requests, once all are there */
  let traced: Json[] = [];

  before(async () => {
    agent = await ospreyUp(['--data', data, '--listen', `127.0.0.1:${await freePort()}`]);
    port = await freePort();
    srv = await startServer(PYTHON, [serverPy, String(port), '--db-password', secret('server --db-password')], port);
  });
  after(async () => {
    await srv?.stop();
    await agent?.stop();
  });

  it('clients carrying secrets in argv, headers and URLs are traced', async () => {
    const base = `http://127.0.0.1:${port}`;
    const basicUser = secret('URL userinfo password');
    const curlUser = secret('curl -u password');
    const runs = [
      // headers, a query and userinfo on curl's command line
      client('curl', [
        '-sS', '-o', '/dev/null',
        '-H', `Authorization: Bearer ${secret('curl Authorization header')}`,
        '-H', `Cookie: session=${secret('curl Cookie header')}`,
        '-H', `X-Api-Key: ${secret('curl X-Api-Key header')}`,
        '-H', `X-Auth-Token: ${secret('curl X-Auth-Token header')}`,
        `http://user:${basicUser}@127.0.0.1:${port}${P}/curl-a?token=${secret('URL token=')}&api_key=${secret('URL api_key=')}&page=2`,
      ]),
      // -u user:pass, --user user:pass, and a query built by curl -G. curl blanks the -u and
      // --user values in its own argv once parsed; the same argv under another executable
      // (python with argv[0] = curl) keeps them, so the curl rules are exercised there too
      client('curl', ['-sS', '-o', '/dev/null', '-u', `user:${curlUser}`, `${base}${P}/curl-b?page=3`]),
      client(PYTHON, [clientPy, '-u', `user:${secret('curl-style -u password')}`, `-uuser:${secret('curl-style -uX password')}`, '--user', `admin:${secret('curl-style --user password')}`, '-E', `cert.pem:${secret('curl-style -E file:password')}`], {
        argv0: 'curl',
        env: { REQ_PORT: String(port), REQ_PATH: `${P}/curl-style` },
      }),
      client('curl', [
        '-sS', '-o', '/dev/null', '--user', `admin:${secret('curl --user password')}`,
        '-G', '--data-urlencode', `password=${secret('curl -G password=')}`, '--data-urlencode', 'keyboard=1', `${base}${P}/curl-c`,
      ]),
      // password flags in their spellings, env-style assignments, with non-secret look-alikes
      client(PYTHON, [
        clientPy,
        '--password', secret('--password x'),
        `--password=${secret('--password=x')}`,
        '--api-key', secret('--api-key x'),
        `--client-secret=${secret('--client-secret=x')}`,
        '--token', secret('--token x'),
        `--header=Authorization: Bearer ${secret('--header=Authorization:')}`,
        `FOO_TOKEN=${secret('FOO_TOKEN=')}`,
        `PGPASSWORD=${secret('PGPASSWORD=')}`,
        `MYSQL_PWD=${secret('MYSQL_PWD=')}`,
        `DB_SECRET=${secret('DB_SECRET=')}`,
        '-p', '8080', '--port', '5432', 'keyboard=1',
      ], { env: { REQ_PORT: String(port), REQ_PATH: `${P}/py-flags?page=4` } }),
      // a real `env NAME=secret` wrapper: the variable reaches the environment, never a span
      client('env', [`FOO_TOKEN=${secret('env FOO_TOKEN=')}`, PYTHON, clientPy, '--verbose'], { env: { REQ_PORT: String(port), REQ_PATH: `${P}/py-env` } }),
      // a mysql-style tool: -pX and -p X are passwords there, -P 3306 a port
      client(PYTHON, [clientPy, '-u', 'root', `-p${secret('mysql -pX')}`, '-p', secret('mysql -p X'), '-P', '3306', '-h', '127.0.0.1'], {
        argv0: 'mysql',
        env: { REQ_PORT: String(port), REQ_PATH: `${P}/mysql` },
      }),
      // the request's own text: userinfo in Host, a path parameter and the query; then secrets in
      // the User-Agent (two requests: each head must fit in the 256 bytes the kernel captures)
      client(PYTHON, [clientPy, '--verbose'], {
        env: {
          REQ_PORT: String(port),
          REQ_HOST: `user:${secret('Host header userinfo')}@127.0.0.1:${port}`,
          REQ_PATH: `${P}/raw;jsessionid=${secret('path ;jsessionid=')}?access_token=${secret('request access_token=')}&page=5`,
        },
      }),
      client(PYTHON, [clientPy, '--verbose'], {
        env: {
          REQ_PORT: String(port),
          REQ_UA: `probe/1.0 (+http://bot:${secret('User-Agent URL userinfo')}@example.com/about?token=${secret('User-Agent URL token=')}) session=${secret('User-Agent session=')}`,
          REQ_PATH: `${P}/ua`,
        },
      }),
    ];
    // curl sends userinfo as Basic credentials: their base64 must not show up either
    secrets.set('base64 of URL userinfo', Buffer.from(`user:${basicUser}`).toString('base64'));
    secrets.set('base64 of curl -u', Buffer.from(`user:${curlUser}`).toString('base64'));
    const results = await Promise.all(runs);
    for (const r of results) assert.equal(r.code, 0, r.stderr);

    // every request shows up as a client span and a server span (paths are distinct prefixes)
    const paths = ['/curl-a', '/curl-b', '/curl-c', '/curl-style', '/py-flags', '/py-env', '/mysql', '/raw', '/ua'];
    // poll until they are all there: completeness is asserted, never timing
    const have = (p: string, k: string) => traced.some((s) => s.kind === k && String((s.attributes as Json)['url.path']).startsWith(`${P}${p}`));
    const end = Date.now() + 60_000;
    for (;;) {
      traced = await querySpans(agent.url, `{ span.url.path =~ "${P}.*" }`);
      if (paths.every((p) => have(p, 'client') && have(p, 'server'))) break;
      if (Date.now() > end) {
        const seen = traced.map((s) => `${String(s.kind)} ${String((s.attributes as Json)['url.path'])}`).join('\n');
        assert.fail(`not every request became a client and a server span; seen:\n${seen}`);
      }
      await sleep(250);
    }
  });

  it('what is stored keeps the useful, non-secret parts', () => {
    const at = (p: string, kind: string) => traced.find((s) => s.kind === kind && String((s.attributes as Json)['url.path']).startsWith(`${P}${p}`))!;
    const cmd = (p: string) => String((at(p, 'client').resource as Json)['process.command_line']);
    // the executable, the URL path and the non-secret query of the command line stay
    assert.match(cmd('/curl-a'), /^curl -sS -o \/dev\/null -H Authorization: REDACTED -H Cookie: REDACTED -H X-Api-Key: REDACTED -H X-Auth-Token: REDACTED /);
    assert.ok(cmd('/curl-a').includes(`http://user:REDACTED@127.0.0.1:${port}${P}/curl-a?token=REDACTED&api_key=REDACTED&page=2`), cmd('/curl-a'));
    assert.ok(cmd('/curl-b').includes(`${P}/curl-b?page=3`), cmd('/curl-b'));
    assert.match(cmd('/curl-style'), /^curl \S*client\.py -u user:REDACTED -uuser:REDACTED --user admin:REDACTED -E cert\.pem:REDACTED$/);
    assert.ok(cmd('/curl-c').includes('-G --data-urlencode password=REDACTED --data-urlencode keyboard=1'), cmd('/curl-c'));
    const py = cmd('/py-flags');
    for (const kept of ['client.py', '--password REDACTED', '--password=REDACTED', '--api-key REDACTED', '--client-secret=REDACTED', '--token REDACTED', '--header=Authorization: REDACTED', 'FOO_TOKEN=REDACTED', 'PGPASSWORD=REDACTED', 'MYSQL_PWD=REDACTED', 'DB_SECRET=REDACTED', '-p 8080 --port 5432 keyboard=1']) {
      assert.ok(py.includes(kept), `${kept} in ${py}`);
    }
    assert.ok(cmd('/py-env').includes('client.py --verbose'), cmd('/py-env'));
    assert.match(cmd('/mysql'), /^mysql \S*client\.py -u root -pREDACTED -p REDACTED -P 3306 -h 127\.0\.0\.1$/);
    assert.ok(String((at('/curl-a', 'server').resource as Json)['process.command_line']).includes('slowsrv.py'));
    assert.ok(String((at('/curl-a', 'server').resource as Json)['process.command_line']).includes('--db-password REDACTED'));
    // service names, queries, the server address and the user agent keep their non-secret parts
    assert.equal((at('/curl-a', 'client').resource as Json)['service.name'], 'curl');
    assert.equal((at('/py-flags', 'client').resource as Json)['service.name'], 'client');
    assert.equal((at('/curl-a', 'server').resource as Json)['service.name'], 'slowsrv');
    assert.equal((at('/curl-a', 'client').attributes as Json)['url.query'], 'token=REDACTED&api_key=REDACTED&page=2');
    assert.equal((at('/curl-c', 'client').attributes as Json)['url.query'], 'password=REDACTED&keyboard=1');
    const raw = at('/raw', 'client').attributes as Json;
    assert.equal(raw['server.address'], '127.0.0.1');
    assert.equal(raw['url.full'], `http://127.0.0.1:${port}${P}/raw;jsessionid=REDACTED?access_token=REDACTED&page=5`);
    assert.equal((at('/ua', 'client').attributes as Json)['user_agent.original'], 'probe/1.0 (+http://bot:REDACTED@example.com/about?token=REDACTED) session=REDACTED');
    assert.equal((at('/ua', 'server').attributes as Json)['user_agent.original'], 'probe/1.0 (+http://bot:REDACTED@example.com/about?token=REDACTED) session=REDACTED');
    assert.equal((at('/raw', 'server').attributes as Json)['server.address'], '127.0.0.1');
  });

  it('no secret anywhere in what the API and the CLI return', async () => {
    const answers = new Map<string, string>();
    const get = async (path: string, headers: Record<string, string> = {}): Promise<string> => {
      const r = await fetch(`${agent.url}${path}`, { headers });
      const body = Buffer.from(await r.arrayBuffer()).toString('latin1');
      assert.ok(r.status < 500, `${path}: ${r.status} ${body}`);
      answers.set(`GET ${path}${headers.accept ? ` (${headers.accept})` : ''}`, body);
      return body;
    };
    const cli = async (args: string[]): Promise<string> => {
      const r = await run(OSPREY, [...args.slice(0, 1), '--server', agent.url, ...args.slice(1)]);
      assert.equal(r.code, 0, `osprey ${args.join(' ')}: ${r.stderr}`);
      answers.set(`osprey ${args.join(' ')}`, r.stdout + r.stderr);
      return r.stdout;
    };

    // spans: the osprey API and the CLI
    const all = JSON.parse(await get('/api/osprey/spans?q=%7B%7D&since=1h&limit=10000')) as { spans: Json[] };
    await get('/api/osprey/spans?since=1h&limit=10000&order=duration');
    const byCli = (await cli(['query', '--json', '--since', '1h', '--limit', '10000', '{}'])).trim().split('\n');
    assert.ok(all.spans.length >= 14 && byCli.length >= 14, `${all.spans.length} / ${byCli.length} spans`);
    // every trace of this test's requests, by id (other traffic on the machine is traced too:
    // its spans are in the catch-all answers above, fetching each of its traces would take long)
    const traceIds = new Set(traced.map((s) => String(s.traceId)));
    for (const id of traceIds) {
      await get(`/api/osprey/traces/${id}`);
      await get(`/api/traces/${id}`);
      await get(`/api/v2/traces/${id}`);
      await get(`/api/traces/${id}`, { accept: 'application/protobuf' });
      await get(`/api/v2/traces/${id}`, { accept: 'application/protobuf' });
      await cli(['trace', '--json', id]);
      await cli(['trace', id]);
    }
    // Tempo search, tags and every tag's values, over everything and over the window of this
    // test's requests: the store answers tag questions from a sample of recent spans and at most
    // 1000 values, and other tests trace their traffic on this machine at the same time, so
    // the window is what makes sure this test's values are in the answers searched below
    const starts = traced.map((s) => BigInt(String(s.startTimeUnixNano)));
    const ends = traced.map((s) => BigInt(String(s.startTimeUnixNano)) + BigInt(Number(s.durationNano)));
    const win = `start=${starts.reduce((a, b) => (a < b ? a : b))}&end=${ends.reduce((a, b) => (a > b ? a : b))}`;
    await get(`/api/search?q=${encodeURIComponent('{}')}&limit=1000&spss=1000`);
    await get(`/api/search?q=${encodeURIComponent('{}')}&limit=1000&spss=1000&${win}`);
    await get('/api/search?limit=1000');
    await get(`/api/search?q=${encodeURIComponent(`{ span.url.path =~ "${P}.*" }`)}&limit=1000&spss=1000`);
    const names = new Set<string>();
    for (const w of ['', `&${win}`]) {
      for (const scope of ['', 'span', 'resource', 'intrinsic']) {
        const q = `?${scope ? `scope=${scope}` : ''}${w}`;
        const v1 = JSON.parse(await get(`/api/search/tags${q}`)) as { tagNames: string[] };
        const v2 = JSON.parse(await get(`/api/v2/search/tags${q}`)) as { scopes: { name: string; tags: string[] }[] };
        for (const t of v1.tagNames) names.add(t);
        for (const sc of v2.scopes) for (const t of sc.tags) names.add(t).add(sc.name === 'intrinsic' ? t : `${sc.name}.${t}`);
      }
    }
    for (const n of ['process.command_line', 'user_agent.original', 'url.full', 'url.query', 'server.address']) assert.ok(names.has(n), `tag ${n} listed`);
    const values = new Map<string, string>();
    for (const n of names) {
      const tag = encodeURIComponent(n);
      await get(`/api/search/tag/${tag}/values`);
      await get(`/api/v2/search/tag/${tag}/values`);
      values.set(n, await get(`/api/search/tag/${tag}/values?${win}`));
      await get(`/api/v2/search/tag/${tag}/values?${win}`);
    }
    // RED, the service graph, status and metrics, the UI and the small endpoints
    await get('/api/osprey/services?since=1h');
    await get('/api/osprey/graph?since=1h');
    await get('/api/osprey/status');
    await get('/metrics');
    await get('/');
    await get('/api/echo');
    await get('/ready');
    await get('/api/status/buildinfo');
    await cli(['services', '--json']);
    await cli(['services']);
    await cli(['graph', '--json']);
    await cli(['graph']);
    await cli(['status', '--json']);
    await cli(['status']);

    // not vacuous: what the secrets rode on is there
    const cmdValues = values.get('process.command_line') ?? '';
    assert.ok(cmdValues.includes('curl -sS') && cmdValues.includes(`${P}/curl-a`), cmdValues);
    for (const [tag, part] of [['url.path', `${P}/py-flags`], ['service.name', '"curl"'], ['user_agent.original', 'probe/1.0']]) {
      assert.ok(values.get(tag!)?.includes(part!), `${part} in the values of ${tag}: ${values.get(tag!)?.slice(0, 2000)}`);
    }
    assert.ok(answers.size > 100, `${answers.size} answers`);

    const leaks: string[] = [];
    for (const [label, s] of secrets) {
      const where = [...answers].filter(([, body]) => body.includes(s)).map(([w]) => w);
      if (where.length) leaks.push(`${label}: in ${where.length} answers, e.g. ${where[0]}`);
    }
    assert.deepEqual(leaks, [], `secrets found:\n${leaks.join('\n')}`);
  });
});

async function querySpans(url: string, q: string): Promise<Json[]> {
  const r = await run(OSPREY, ['query', '--server', url, '--json', '--since', '10m', '--limit', '1000', q]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim() ? r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Json) : [];
}
