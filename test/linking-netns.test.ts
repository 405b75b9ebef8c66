// The tuple rule across network namespaces: every Kubernetes pod has its own 127.0.0.1 and
// its own port space, so two pods on one node can hold the very same loopback 4-tuple at the
// same time (an app calling its sidecar, say). Two namespaces made here with `ip netns`, in
// each a real Python server on the same port and a real curl from the same source port with
// the same request line, at the same moment: each server span must be the child of the curl
// of its own namespace, never of the other.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { SpanCollector } from './agent-helpers.js';
import { run, sleep, waitFor } from './helpers.js';

const ROUNDS = 8;
const PORT = 18080;
const SERVER = `
import http.server, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        time.sleep(0.3)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
# one request at a time: a second one waits, unread, in the listen backlog
s = http.server.HTTPServer(("127.0.0.1", ${PORT}), H)
print("ready", flush=True)
s.serve_forever()
`;

describe('loopback connections in two network namespaces', { timeout: 180_000 }, () => {
  const tag = `osp${process.pid}`;
  const nss = [`${tag}a`, `${tag}b`];
  const servers: { ns: string; pid: number; kill: () => void }[] = [];
  let col: SpanCollector;

  before(async () => {
    for (const ns of nss) {
      assert.equal((await run('ip', ['netns', 'add', ns])).code, 0, `ip netns add ${ns}`);
      assert.equal((await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])).code, 0);
    }
    col = new SpanCollector();
    for (const ns of nss) {
      // `ip netns exec` enters the namespace and execs the command: the pid is Python's
      const child = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      await waitFor(`server in ${ns}`, () => out.includes('ready'), 10_000);
      servers.push({ ns, pid: child.pid!, kill: () => child.kill('SIGKILL') });
    }
  });
  after(async () => {
    for (const s of servers) s.kill();
    await col?.close();
    for (const ns of nss) await run('ip', ['netns', 'delete', ns]);
  });

  it(`${ROUNDS} rounds of the same 4-tuple and request line in both at once: every server span has its own namespace's client as parent`, async () => {
    const clientPids = new Map<number, string>();
    for (let i = 0; i < ROUNDS; i++) {
      // the same source port in both namespaces; another one each round (TIME_WAIT)
      const localPort = String(41000 + ((process.pid + i * 7) % 2000));
      // the first namespace's server is kept busy, so its /same request waits unread while the
      // other namespace's identical request is read at once: a tuple rule blind to namespaces
      // pairs that read with the older, still unanswered client of the first namespace
      const [first, second] = i % 2 ? [nss[1]!, nss[0]!] : [nss[0]!, nss[1]!];
      const curl = (ns: string, port: string, path: string) =>
        run('ip', ['netns', 'exec', ns, 'curl', '-sS', '--local-port', port, '-o', '/dev/null', `http://127.0.0.1:${PORT}${path}`]);
      const busy = curl(first, String(Number(localPort) + 3000), '/busy');
      await sleep(80);
      const a = curl(first, localPort, '/same');
      await sleep(80);
      const b = curl(second, localPort, '/same');
      const results = await Promise.all([a, b, busy]);
      results.forEach((r, k) => {
        assert.equal(r.code, 0, r.stderr);
        clientPids.set(r.pid, k === 1 ? second : first);
      });
    }
    const serverNs = new Map(servers.map((s) => [s.pid, s.ns]));
    await col.waitSpans('all server spans', (s) => s.filter((x) => serverNs.has(Number(x.resource['process.pid']))).length >= 3 * ROUNDS, 10_000);
    await sleep(500);
    const byId = new Map(col.spans.map((s) => [s.spanId, s]));
    let right = 0;
    let wrong = 0;
    for (const s of col.spans.filter((x) => serverNs.has(Number(x.resource['process.pid'])))) {
      const p = byId.get(s.parentSpanId);
      if (!p) continue;
      if (clientPids.get(Number(p.resource['process.pid'])) === serverNs.get(Number(s.resource['process.pid']))) right++;
      else wrong++;
    }
    console.log(`netns: ${right} server spans with their own namespace's client as parent, ${wrong} with the other's`);
    assert.equal(wrong, 0, 'no server span is the child of a client in another namespace');
    assert.ok(right >= 3 * ROUNDS * 0.9, `${right} of ${3 * ROUNDS} linked`);
  });
});
