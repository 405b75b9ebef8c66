// `osprey events` as a user runs it: a real process, real curl, SIGINT.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort, run, startServer, waitFor } from './helpers.js';

const OSPREY = fileURLToPath(new URL('../../bin/osprey', import.meta.url));

describe('osprey events', { timeout: 60_000 }, () => {
  it('--json streams events within 1 s, stdout holds only events, SIGINT exits 0', async () => {
    const port = await freePort();
    const srv = await startServer('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1'], port);
    const child = spawn(OSPREY, ['events', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    try {
      await waitFor('capture start', () => err.includes('capturing'), 15000);
      const c = await run('curl', ['-sS', `http://127.0.0.1:${port}/some/path?x=1`, '-o', '/dev/null']);
      const doneAt = Date.now();
      assert.equal(c.code, 0);
      await waitFor('curl close event', () => out.split('\n').some((l) => l.includes(`"pid":${c.pid},`) && l.includes('"op":"close"')), 1000);
      assert.ok(Date.now() - doneAt <= 1000);
      const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGINT');
      assert.equal(await exit, 0, err);
      const lines = out.trim().split('\n');
      const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      for (const e of events) {
        for (const k of ['ts', 'pid', 'tid', 'comm', 'op', 'local', 'remote', 'bytes', 'data']) assert.ok(k in e, `${k} in ${JSON.stringify(e)}`);
        assert.match(e.ts as string, /^\d{19}$/);
      }
      const mine = events.filter((e) => e.pid === c.pid);
      // connect, the request, the response (headers and body may be one recv or more), close
      assert.match(mine.map((e) => e.op).join(' '), /^connect send (recv )+close$/);
      assert.equal(mine[0]!.op, 'connect');
      assert.equal(mine[0]!.remote, `127.0.0.1:${port}`);
      const send = mine.find((e) => e.op === 'send')!;
      assert.ok((send.data as string).startsWith('GET /some/path?x=1 HTTP/1.1\r\n'));
      assert.equal(send.bytes, (send.data as string).length);
      assert.equal(mine.at(-1)!.op, 'close');
      const ts = Number(BigInt(mine[0]!.ts as string) / 1_000_000n);
      assert.ok(Math.abs(ts - Date.now()) < 10_000, 'ts is unix-epoch ns');
    } finally {
      child.kill('SIGKILL');
      await srv.stop();
    }
  });

  it('without privileges: a clear error and exit code 1', async () => {
    const r = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', OSPREY, 'events']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /needs root or CAP_BPF\+CAP_PERFMON/);
    assert.match(r.stderr, /fix: /);
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
  });

  it('bad arguments: usage error, exit code 2', async () => {
    const r = await run(OSPREY, ['events', '--pid', 'abc']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--pid must be an integer/);
    const u = await run(OSPREY, ['nope']);
    assert.equal(u.code, 2);
    assert.match(u.stderr, /unknown command "nope"/);
  });

  it('--help on every command', async () => {
    const main = await run(OSPREY, ['--help']);
    assert.equal(main.code, 0);
    const names = [...main.stdout.matchAll(/^ {2}([a-z]+) {2}/gm)].map((m) => m[1]!);
    assert.ok(names.includes('events') && names.includes('status'));
    for (const n of names) {
      const h = await run(OSPREY, [n, '--help']);
      assert.equal(h.code, 0, n);
      assert.match(h.stdout, new RegExp(`^Usage: osprey ${n}`));
    }
  });
});
