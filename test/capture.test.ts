// The capture layer against the real kernel and real, unmodified servers and
// clients: tuples, byte counts, payload prefixes, lifetimes, gating, limits.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Flag, Role } from '../src/kernel/index.js';
import { freePort, Recorder, run, startServer, waitFor, type Proc, type SeenEvent } from './helpers.js';

const NODE_SERVER = `
const http = require('http');
const big = Buffer.alloc(1 << 20, 'x');
http.createServer((req, res) => {
  if (req.url === '/big') { res.setHeader('content-length', big.length); res.end(big); return; }
  res.setHeader('content-type', 'text/plain');
  res.end('hello ' + req.url);
}).listen(Number(process.argv[1]), process.argv[2]);
`;

const NODE_CLIENT = `
const http = require('http');
const [url, n] = [process.argv[1], Number(process.argv[2] || 1)];
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
(async () => {
  for (let i = 0; i < n; i++) {
    await new Promise((resolve, reject) => {
      http.get(url + (n > 1 ? '?i=' + i : ''), { agent }, (res) => {
        let len = 0; res.on('data', (d) => (len += d.length)); res.on('end', () => { console.log(res.statusCode, len); resolve(); });
      }).on('error', reject);
    });
  }
  agent.destroy();
})();
`;

function conns(events: SeenEvent[]): Map<number, SeenEvent[]> {
  const m = new Map<number, SeenEvent[]>();
  for (const e of events) m.set(e.connId, [...(m.get(e.connId) ?? []), e]);
  return m;
}

/** the whole life of one HTTP exchange, seen from both processes */
/**
 * checkExchange once every event of the exchange has arrived: the server's close of THIS
 * connection, not any close of the server process (startServer's port probe connects and
 * closes too, and its close may come first)
 */
async function waitForExchange(...args: Parameters<typeof checkExchange>): Promise<ReturnType<typeof checkExchange>> {
  const complete = () => {
    try {
      checkExchange(...args);
      return true;
    } catch {
      return false;
    }
  };
  // on a timeout, the check below says what is missing
  await waitFor('the exchange with both closes', complete).catch(() => undefined);
  return checkExchange(...args);
}

function checkExchange(rec: Recorder, serverPid: number, clientPid: number, path: string, host: string) {
  const client = rec.of(clientPid);
  const server = rec.of(serverPid);
  const connect = client.find((e) => e.op === 'connect' && e.remote.endsWith(`:${server.find((s) => s.op === 'accept')?.local.split(':').pop()}`));
  assert.ok(connect, `client connect seen: ${JSON.stringify(client.slice(0, 3))}`);
  assert.equal(connect.role, Role.client);
  const accept = server.find((e) => e.op === 'accept' && e.remote === connect.local);
  assert.ok(accept, 'server accept with the client tuple mirrored');
  assert.equal(accept.local, connect.remote);
  assert.equal(accept.role, Role.server);
  assert.ok(connect.local.startsWith(host), `${connect.local} is on ${host}`);

  const cSend = client.find((e) => e.op === 'send' && e.connId === connect.connId);
  const sRecv = server.find((e) => e.op === 'recv' && e.connId === accept.connId);
  assert.ok(cSend && sRecv, 'request send and recv');
  assert.ok(cSend.data.startsWith(`GET ${path} HTTP/1.1\r\n`), cSend.data);
  assert.ok(sRecv.data.startsWith(`GET ${path} HTTP/1.1\r\n`), sRecv.data);
  assert.equal(sRecv.bytes, cSend.bytes, 'same request length on both sides');
  assert.equal(cSend.bytes, cSend.data.length, 'a small request is captured whole');

  const sSends = server.filter((e) => e.op === 'send' && e.connId === accept.connId);
  const cRecvs = client.filter((e) => e.op === 'recv' && e.connId === connect.connId);
  assert.ok(sSends[0]?.data.startsWith('HTTP/1.'), 'response status line');
  const sent = sSends.reduce((a, e) => a + e.bytes, 0);
  const got = cRecvs.reduce((a, e) => a + e.bytes, 0);
  assert.equal(got, sent, 'bytes received by the client = bytes the server sent');
  assert.ok(client.some((e) => e.op === 'close' && e.connId === connect.connId), 'client close');
  assert.ok(server.some((e) => e.op === 'close' && e.connId === accept.connId), 'server close');
  return { connect, accept, sent };
}

describe('capture', { timeout: 120_000 }, () => {
  let rec: Recorder;
  const procs: Proc[] = [];
  before(() => {
    rec = Recorder.open();
  });
  after(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await rec.close();
  });

  for (const [host, bind, curlHost] of [
    ['127.0.0.1', '127.0.0.1', '127.0.0.1'],
    ['[::1]', '::1', '[::1]'],
  ] as const) {
    it(`python http.server answering curl over ${host}`, async () => {
      const port = await freePort(bind);
      const srv = await startServer('python3', ['-m', 'http.server', String(port), '--bind', bind], port, bind);
      procs.push(srv);
      const c = await run('curl', ['-sS', '-g', `http://${curlHost}:${port}/`, '-o', '/dev/null']);
      assert.equal(c.code, 0, c.stderr);
      await waitForExchange(rec, srv.pid, c.pid, '/', host);
      await srv.stop();
    });

    it(`node http server answering a node client over ${host}`, async () => {
      const port = await freePort(bind);
      const srv = await startServer('node', ['-e', NODE_SERVER, String(port), bind], port, bind);
      procs.push(srv);
      const c = await run('node', ['-e', NODE_CLIENT, `http://${curlHost}:${port}/hi`]);
      assert.equal(c.code, 0, c.stderr);
      assert.match(c.stdout, /^200 9/);
      const { sent } = await waitForExchange(rec, srv.pid, c.pid, '/hi', host);
      assert.ok(sent > 9);
      await srv.stop();
    });
  }

  it('keep-alive: several requests on one connection, then a 1 MiB response', async () => {
    const port = await freePort();
    const srv = await startServer('node', ['-e', NODE_SERVER, String(port), '127.0.0.1'], port);
    procs.push(srv);
    const before = rec.cap.counters().payload_truncated;
    const c = await run('node', ['-e', NODE_CLIENT, `http://127.0.0.1:${port}/k`, '5']);
    assert.equal(c.code, 0, c.stderr);
    const big = await run('curl', ['-sS', `http://127.0.0.1:${port}/big`, `http://127.0.0.1:${port}/big`, '-o', '/dev/null', '-o', '/dev/null']);
    assert.equal(big.code, 0);
    await waitFor('closes', () => rec.of(c.pid).some((e) => e.op === 'close') && rec.of(big.pid).some((e) => e.op === 'close'));

    const byConn = conns(rec.of(c.pid));
    assert.equal(byConn.size, 1, 'one connection for 5 requests');
    const sends = [...byConn.values()][0]!.filter((e) => e.op === 'send');
    assert.deepEqual(
      sends.map((e) => e.data.split(' ')[1]),
      [0, 1, 2, 3, 4].map((i) => `/k?i=${i}`),
    );

    // curl reuses the connection for both URLs: two responses of 1 MiB + headers
    const bigConns = conns(rec.of(big.pid));
    assert.equal(bigConns.size, 1);
    const recvd = [...bigConns.values()][0]!.filter((e) => e.op === 'recv');
    const total = recvd.reduce((a, e) => a + e.bytes, 0);
    assert.ok(total > 2 * (1 << 20) && total < 2 * (1 << 20) + 1000, `received ${total}`);
    assert.ok(recvd.some((e) => e.flags & Flag.truncated && e.data.length === 256 && e.bytes > 256));
    const srvSends = rec.of(srv.pid).filter((e) => e.op === 'send' && e.remote === [...bigConns.values()][0]![0]!.local);
    assert.equal(srvSends.reduce((a, e) => a + e.bytes, 0), total, 'server sent what curl received');
    assert.ok(rec.cap.counters().payload_truncated > before, 'truncation counted');
    await srv.stop();
  });

  it('nginx serving a static file: writev headers and sendfile body with the full length', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'osprey-nginx-'));
    const port = await freePort();
    const body = Buffer.alloc(200_000, 'n');
    writeFileSync(join(dir, 'file.bin'), body);
    writeFileSync(
      join(dir, 'nginx.conf'),
      `daemon off; master_process off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 64; }
http { access_log off; sendfile on; tcp_nopush on; client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  server { listen 127.0.0.1:${port}; root ${dir}; } }`,
    );
    const srv = await startServer('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], port);
    procs.push(srv);
    const c = await run('curl', ['-sS', `http://127.0.0.1:${port}/file.bin`, '-o', '/dev/null']);
    assert.equal(c.code, 0, c.stderr);
    await waitFor('nginx sendfile', () => rec.of(srv.pid).find((e) => e.op === 'send' && e.flags & Flag.sendfile));
    const sends = rec.of(srv.pid).filter((e) => e.op === 'send');
    const header = sends.find((e) => e.data.startsWith('HTTP/1.1 200'));
    assert.ok(header, 'response headers captured');
    const viaSendfile = sends.filter((e) => e.flags & Flag.sendfile).reduce((a, e) => a + e.bytes, 0);
    assert.equal(viaSendfile, body.length, 'sendfile reports the whole file');
    await srv.stop();
  });

  it('recvmsg/sendmsg with iovecs are captured from the first iovecs', async () => {
    const port = await freePort();
    const server = `
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()
while True:
    c, _ = s.accept()
    buf = bytearray(4096)
    n = c.recvmsg_into([memoryview(buf)[:10], memoryview(buf)[10:]])[0]
    c.sendmsg([b'HTTP/1.1 200 OK\\r\\n', b'Content-Length: 2\\r\\n\\r\\n', b'ok'])
    c.close()
`;
    const srv = await startServer('python3', ['-c', server, String(port)], port);
    procs.push(srv);
    const c = await run('curl', ['-sS', `http://127.0.0.1:${port}/msg`]);
    assert.equal(c.stdout, 'ok');
    // curl's connection, not startServer's readiness probe (accepted first: no bytes read, a
    // send into a closed socket)
    const recv = await waitFor('server recv', () => rec.of(srv.pid).find((e) => e.op === 'recv' && e.data.startsWith('GET /msg')));
    assert.ok(recv.data.startsWith('GET /msg HTTP/1.1\r\nHost'), recv.data);
    assert.equal(recv.data.length, recv.bytes);
    const send = await waitFor('server send', () => rec.of(srv.pid).find((e) => e.op === 'send' && e.connId === recv.connId));
    assert.equal(send.data, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    assert.equal(send.bytes, 40);
    await srv.stop();
  });

  it('MSG_PEEK reads are not part of the byte stream (recv and recvmsg)', async () => {
    // curl peeks one byte to test a pooled connection: counting the peeked byte twice shifted
    // every HTTP/2 frame after it
    const port = await freePort();
    const srv = await startServer('node', ['-e', NODE_SERVER, String(port), '127.0.0.1'], port);
    procs.push(srv);
    const client = `
import socket, sys
c = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
got = b''
for i, path in enumerate(['/peek-a', '/peek-b']):
    c.sendall(b'GET ' + path.encode() + b' HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')
    # one peek through recvfrom, one through recvmsg, then the reads that consume
    assert c.recv(1, socket.MSG_PEEK)
    assert c.recvmsg(5, 0, socket.MSG_PEEK)[0]
    r = b''
    while not r.endswith(b'hello ' + path.encode()):
        r += c.recv(4096)
    got += r
c.close()
sys.stdout.buffer.write(got)
`;
    const c = await run('python3', ['-c', client, String(port)]);
    assert.equal(c.code, 0, c.stderr);
    const total = Buffer.byteLength(c.stdout);
    assert.match(c.stdout, /hello \/peek-b$/);
    await waitFor('client recvs', () => rec.of(c.pid).filter((e) => e.op === 'recv').reduce((a, e) => a + e.bytes, 0) >= total);
    await new Promise((r) => setTimeout(r, 300));
    const recvs = rec.of(c.pid).filter((e) => e.op === 'recv');
    assert.equal(recvs.map((e) => e.data).join(''), c.stdout, 'each byte read once, in order: no peeked copies');
    await srv.stop();
  });

  it('a non-HTTP peer is ignored after its first payload', async () => {
    const port = await freePort();
    const server = `
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()
while True:
    c, _ = s.accept()
    while True:
        d = c.recv(100)
        if not d: break
        c.sendall(b'+PONG\\r\\n')
    c.close()
`;
    const srv = await startServer('python3', ['-c', server, String(port)], port);
    procs.push(srv);
    const client = `
import socket, sys, time
c = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
for i in range(20):
    c.sendall(b'*1\\r\\n$4\\r\\nPING\\r\\n'); c.recv(100)
c.close()
`;
    const before = rec.cap.counters().conn_ignored;
    const c = await run('python3', ['-c', client, String(port)]);
    assert.equal(c.code, 0, c.stderr);
    await waitFor('connect', () => rec.of(c.pid).find((e) => e.op === 'connect'));
    await new Promise((r) => setTimeout(r, 300));
    const mine = rec.of(c.pid);
    const payload = mine.filter((e) => e.op === 'send' || e.op === 'recv' || e.op === 'close');
    assert.equal(payload.length, 1, `only the first payload: ${JSON.stringify(payload.map((e) => e.op))}`);
    assert.ok(payload[0]!.flags & Flag.ignored);
    const local = rec.of(c.pid).find((e) => e.op === 'connect')!.local;
    const theirs = rec.of(srv.pid).filter((e) => e.op !== 'accept' && e.remote === local);
    assert.ok(theirs.length <= 1, `server side: ${theirs.length}`);
    assert.ok(rec.cap.counters().conn_ignored >= before + 2);
    await srv.stop();
  });

  it('a connection opened before attach is traced from its next request', async () => {
    const port = await freePort();
    const srv = await startServer('node', ['-e', NODE_SERVER, String(port), '127.0.0.1'], port);
    procs.push(srv);
    // a client that connects, waits for the capture to start, then sends twice on the same connection
    const client = `
const net = require('net');
const c = net.connect(${port}, '127.0.0.1', () => process.stdout.write('connected\\n'));
process.stdin.once('data', () => {
  c.write('GET /early HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n');
  c.once('data', () => { c.end(); });
});
`;
    await rec.close();
    const { spawn } = await import('node:child_process');
    const child = spawn('node', ['-e', client], { stdio: ['pipe', 'pipe', 'inherit'] });
    await new Promise((r) => child.stdout.once('data', r));
    rec = Recorder.open();
    child.stdin.end('go\n');
    await new Promise((r) => child.once('exit', r));
    const ev = await waitFor('pre-existing send', () => rec.of(child.pid!).find((e) => e.op === 'send'));
    assert.ok(ev.flags & Flag.preexisting);
    assert.equal(ev.remote, `127.0.0.1:${port}`);
    assert.ok(ev.data.startsWith('GET /early'));
    const sv = await waitFor('server recv', () => rec.of(srv.pid).find((e) => e.op === 'recv' && e.data.startsWith('GET /early')));
    assert.equal(sv.local, `127.0.0.1:${port}`);
    assert.equal(sv.remote, ev.local);
    await srv.stop();
  });
});

describe('capture filters', { timeout: 60_000 }, () => {
  it('a pid filter set from user space keeps one process in the kernel', async () => {
    const port = await freePort();
    const srv = await startServer('node', ['-e', NODE_SERVER, String(port), '127.0.0.1'], port);
    const rec = Recorder.open({ pids: [srv.pid] });
    try {
      const c = await run('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${port}/only-server`]);
      assert.equal(c.code, 0);
      await waitFor('server events', () => rec.of(srv.pid).some((e) => e.op === 'close'));
      assert.equal(rec.of(c.pid).length, 0, 'the client is filtered out in the kernel');
      assert.ok(rec.events.every((e) => e.pid === srv.pid), 'only the server pid');
    } finally {
      await rec.close();
      await srv.stop();
    }
  });
});

// In summarize mode (the agent's default) a connection's opening is not sent: every event carries
// the connection, so user space opens it at its first one, and a connection that never carries
// HTTP (a TCP health check) reaches user space not at all, not even its close.
describe('capture in summarize mode: connections', { timeout: 60_000 }, () => {
  it('HTTP over a connection per request: no connect or accept records, one close per side, all exchanges', async () => {
    const port = await freePort();
    const srv = await startServer('node', ['-e', NODE_SERVER, String(port), '127.0.0.1'], port);
    const rec = Recorder.open({ summarize: 'on' });
    try {
      const n = 20;
      // one curl, several URLs, `Connection: close`: one process, a new connection per request
      const urls = Array.from({ length: n }, (_, i) => `http://127.0.0.1:${port}/close-${i}`);
      const c = await run('curl', ['-sS', '-H', 'Connection: close', ...urls.flatMap((u) => ['-o', '/dev/null', u])]);
      assert.equal(c.code, 0, c.stderr);
      await waitFor('every server close', () => rec.of(srv.pid).filter((e) => e.op === 'close').length >= n);
      await waitFor('every client close', () => rec.of(c.pid).filter((e) => e.op === 'close').length >= n);
      const mine = [...rec.of(srv.pid), ...rec.of(c.pid)];
      assert.deepEqual(mine.filter((e) => e.op === 'connect' || e.op === 'accept'), [], 'no opening records');
      for (const [pid, side] of [[srv.pid, 'server'], [c.pid, 'client']] as const) {
        const byConn = conns(rec.of(pid));
        assert.equal(byConn.size, n, `${side}: ${n} connections`);
        for (const [id, evs] of byConn) {
          assert.equal(evs.filter((e) => e.op === 'close').length, 1, `${side} connection ${id}: one close`);
          assert.equal(evs.filter((e) => e.op === 'exchange').length, 1, `${side} connection ${id}: one exchange record`);
          assert.equal(evs.at(-1)!.op, 'close', `${side} connection ${id}: the close comes last`);
        }
      }
    } finally {
      await rec.close();
      await srv.stop();
    }
  });

  it('connections that never carry a byte (TCP health checks) reach user space not at all; with summaries off they do', async () => {
    const port = await freePort();
    // accepts and closes, as a TCP readiness probe's peer sees it
    const srv = await startServer('node', ['-e', `require('net').createServer((s) => s.destroy()).listen(${port}, '127.0.0.1')`], port);
    const probe = `
const net = require('net');
(async () => {
  for (let i = 0; i < 50; i++) await new Promise((r) => { const s = net.connect(${port}, '127.0.0.1', () => { s.end(); }); s.on('close', r); s.on('error', r); });
})();`;
    try {
      for (const summarize of ['on', 'off'] as const) {
        const rec = Recorder.open({ summarize });
        try {
          const p = await run('node', ['-e', probe]);
          assert.equal(p.code, 0, p.stderr);
          if (summarize === 'on') {
            // give any record time to arrive, then check none did
            await waitFor('the kernel saw the connections', () => rec.cap.counters().conn_opened >= 100);
            await new Promise((r) => setTimeout(r, 300));
            assert.deepEqual([...rec.of(srv.pid), ...rec.of(p.pid)].map((e) => e.op), []);
          } else {
            await waitFor('50 connects, accepts and closes each side', () => {
              const ops = [...rec.of(srv.pid), ...rec.of(p.pid)].map((e) => e.op);
              return ops.filter((o) => o === 'connect').length >= 50 && ops.filter((o) => o === 'accept').length >= 50 && ops.filter((o) => o === 'close').length >= 100;
            });
          }
        } finally {
          await rec.close();
        }
      }
    } finally {
      await srv.stop();
    }
  });
});

// A middle tier: answers each request after a call of its own to a backend (a fresh process
// that has called nobody before its first request)
const NODE_MIDDLE = `
const http = require('http');
const backend = Number(process.argv[2]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
http.createServer((req, res) => {
  http.get({ host: '127.0.0.1', port: backend, path: '/from-middle' + req.url, agent }, (r) => {
    r.resume();
    r.on('end', () => res.end('via middle ' + r.statusCode));
  });
}).listen(Number(process.argv[1]), '127.0.0.1');
`;

describe('capture in summarize mode: linking hints', { timeout: 60_000 }, () => {
  it('a server that calls nobody and a client that serves nothing: one record per exchange, a hint only for the first', async () => {
    const port = await freePort();
    const srv = await startServer('node', ['-e', NODE_SERVER, String(port), '127.0.0.1'], port);
    const rec = Recorder.open({ summarize: 'on' });
    try {
      const n = 10;
      const c = await run('node', ['-e', NODE_CLIENT, `http://127.0.0.1:${port}/pure`, String(n)]);
      assert.equal(c.code, 0, c.stderr);
      await waitFor('every exchange record', () => rec.of(srv.pid).filter((e) => e.op === 'exchange').length >= n && rec.of(c.pid).filter((e) => e.op === 'exchange').length >= n);
      await waitFor('the close of each side', () => rec.of(srv.pid).some((e) => e.op === 'close') && rec.of(c.pid).some((e) => e.op === 'close'));
      for (const [pid, side] of [[srv.pid, 'server'], [c.pid, 'client']] as const) {
        const ops = rec.of(pid).filter((e) => e.op !== 'close').map((e) => e.op);
        // the process's first request start is told (user space learns of it while it lives)
        assert.equal(ops[0], 'head', `${side}: ${ops}`);
        assert.deepEqual(ops.filter((o) => o === 'exchange').length, n, `${side}: ${ops}`);
        assert.ok(ops.length <= n + 2 && ops.slice(2).every((o) => o === 'exchange'), `${side}: after the first exchange, only exchange records: ${ops}`);
      }
    } finally {
      await rec.close();
      await srv.stop();
    }
  });

  it('a server that calls out: the starts of its requests and calls are told, the first request at its first call', async () => {
    const backendPort = await freePort();
    const backend = await startServer('node', ['-e', NODE_SERVER, String(backendPort), '127.0.0.1'], backendPort);
    const rec = Recorder.open({ summarize: 'on' });
    const port = await freePort();
    // started under the capture: its requests are untold until it first calls out
    const middle = await startServer('node', ['-e', NODE_MIDDLE, String(port), String(backendPort)], port);
    try {
      const n = 5;
      const c = await run('node', ['-e', NODE_CLIENT, `http://127.0.0.1:${port}/hop`, String(n)]);
      assert.equal(c.code, 0, c.stderr);
      await waitFor('every exchange of the middle', () => rec.of(middle.pid).filter((e) => e.op === 'exchange').length >= 2 * n);
      const evs = rec.of(middle.pid).filter((e) => e.op !== 'close');
      const servers = evs.filter((e) => e.role === Role.server);
      const calls = evs.filter((e) => e.role === Role.client);
      const heads = (xs: SeenEvent[]) => xs.filter((e) => e.op === 'head');
      assert.equal(heads(servers).length, n, `each request's start told: ${servers.map((e) => e.op)}`);
      assert.equal(heads(calls).length, n, `each call's start told: ${calls.map((e) => e.op)}`);
      assert.ok(
        evs.every((e) => e.op !== 'head' || e.link === 0),
        'no start is unsure (the first request was told at the first call)',
      );
      // the first request: its start was held back, and told at the first call, before the call's own
      const first = evs.findIndex((e) => e.op === 'head' && e.role === Role.server);
      const firstCall = evs.findIndex((e) => e.op === 'head' && e.role === Role.client);
      assert.ok(first >= 0 && first < firstCall, `the first request's start comes before the first call's: ${evs.map((e) => e.op)}`);
      assert.ok(evs[first]!.ts < evs[firstCall]!.ts, 'with its own time');
      assert.ok(evs[first]!.data.startsWith('GET /hop?i=0 HTTP/1.1'), evs[first]!.data);
      // the backend and the client: no hint but their first request's start
      for (const pid of [backend.pid, c.pid]) assert.ok(rec.of(pid).filter((e) => e.op === 'head' || e.op === 'responded').length <= 1, `${pid}: ${rec.of(pid).map((e) => e.op)}`);
    } finally {
      await rec.close();
      await middle.stop();
      await backend.stop();
    }
  });
});

// a guard, not a target: each attach runs the verifier over every program (seconds each; far
// more when parallel suites load the machine)
describe('capture limits', { timeout: 420_000 }, () => {
  it('20k short connections: per-connection map entries return to baseline', async () => {
    const port = await freePort();
    const srv = await startServer('node', ['-e', NODE_SERVER, String(port), '127.0.0.1'], port);
    const rec = Recorder.open();
    try {
      const base = rec.cap.mapEntries('conns');
      const churn = `
const http = require('http');
let left = 20000, inflight = 0, done = 0;
const agent = new http.Agent({ keepAlive: false });
function one() {
  if (left <= 0) return; left--; inflight++;
  http.get('http://127.0.0.1:${port}/c', { agent }, (res) => { res.resume(); res.on('end', () => { inflight--; done++; if (done === 20000) console.log('done'); else one(); }); })
    .on('error', (e) => { console.error(e.message); process.exit(1); });
}
for (let i = 0; i < 16; i++) one();
`;
      const c = await run('node', ['-e', churn], { timeoutMs: 120_000 });
      assert.equal(c.stdout.trim(), 'done', c.stderr);
      await waitFor('entries back to baseline', () => rec.cap.mapEntries('conns') <= base + 20, 10000).catch(() => undefined);
      const after = rec.cap.mapEntries('conns');
      assert.ok(after <= base + 20, `conns entries ${base} -> ${after}`);
      assert.ok(rec.cap.mapEntries('socks') <= base + 20 + 64, `socks entries ${rec.cap.mapEntries('socks')}`);
      const opened = rec.cap.counters().conn_opened;
      assert.ok(opened >= 40000, `both ends of 20k connections seen: ${opened}`);
    } finally {
      await rec.close();
      await srv.stop();
    }
  });

  it('attach/detach 5 times in one process leaks no programs, links or fds', async () => {
    const fds = () => readdirSync('/proc/self/fd').length;
    /** ids of the BPF programs this process holds (other agents on the machine have their own) */
    const ourProgIds = (): number[] => {
      const ids: number[] = [];
      for (const fd of readdirSync('/proc/self/fdinfo')) {
        try {
          const m = /^prog_id:\s*(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
          if (m) ids.push(Number(m[1]));
        } catch {
          // closed meanwhile
        }
      }
      return ids;
    };
    const loaded = async (): Promise<Set<number>> => {
      const r = await run('bpftool', ['prog', 'show', '--json']);
      return new Set((JSON.parse(r.stdout) as { id: number }[]).map((p) => p.id));
    };
    const fdBefore = fds();
    const ours = new Set<number>();
    for (let i = 0; i < 5; i++) {
      const rec = Recorder.open();
      assert.ok(rec.cap.programs.every((p) => p.attached));
      for (const id of ourProgIds()) ours.add(id);
      await rec.close();
    }
    assert.ok(ours.size >= 5, `our programs were seen while attached (${ours.size})`);
    assert.equal(fds(), fdBefore, 'fds');
    // the kernel frees a program once its last reference (fd or link) is gone
    let left = [...ours];
    for (let t = 0; t < 50 && left.length; t++) {
      const now = await loaded();
      left = left.filter((id) => now.has(id));
      if (left.length) await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(left, [], 'programs still loaded after close');
  });

  it('overload: a tiny ring buffer drops and counts, the server keeps serving', async () => {
    const port = await freePort();
    const srv = await startServer('node', ['-e', NODE_SERVER, String(port), '127.0.0.1'], port);
    // 4 KiB ring, no timer drain for a while: most events cannot fit
    const rec = Recorder.open({ ringBytes: 4096, pollMs: 500, captureSize: 1024 });
    try {
      const c = await run('node', ['-e', NODE_CLIENT, `http://127.0.0.1:${port}/flood`, '2000'], { timeoutMs: 60_000 });
      assert.equal(c.code, 0, c.stderr);
      const lines = c.stdout.trim().split('\n');
      assert.equal(lines.length, 2000, 'every request answered');
      assert.ok(lines.every((l) => l.startsWith('200 ')));
      await new Promise((r) => setTimeout(r, 700));
      const k = rec.cap.counters();
      assert.ok(k.ringbuf_dropped > 0, 'drops counted');
      // everything the kernel wrote was delivered: events counter = records decoded (+ in flight)
      assert.ok(rec.stats.records <= k.events);
      assert.ok(rec.stats.records + k.ringbuf_dropped >= 4 * 2000, `${rec.stats.records} + ${k.ringbuf_dropped}`);
    } finally {
      await rec.close();
      await srv.stop();
    }
  });
});
