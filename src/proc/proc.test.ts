// The process helpers with real processes: readiness, stopping whole groups, run(), ports.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { freePort, groupPids, isAlive, portOpen, run, spawnChild, startProcess, startServer, waitFor } from './index.js';

void describe('startProcess', { timeout: 30_000 }, () => {
  void it('reports the last output of a process that dies before listening', async () => {
    const port = await freePort();
    await assert.rejects(
      startProcess({ name: 'dies', cmd: 'sh', args: ['-c', 'echo no-such-config >&2; exit 3'], port }),
      (err: Error) => /exited with 3/.test(err.message) && /no-such-config/.test(err.message),
    );
  });

  void it('times out and kills a process that never listens', async () => {
    const port = await freePort();
    let pid = 0;
    await assert.rejects(
      startProcess({ name: 'sleeper', cmd: 'sh', args: ['-c', 'echo $$; exec sleep 30'], port, timeoutMs: 500, log: (l) => (pid = Number(l.split(' ')[1])) }),
      /not accepting connections/,
    );
    assert.ok(pid > 0);
    assert.equal(isAlive(pid), false);
  });

  void it('does not take a port another process listens on for its own', async () => {
    const port = await freePort();
    const other = await startServer('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1'], port);
    try {
      await assert.rejects(startProcess({ name: 'late', cmd: 'sleep', args: ['30'], port, timeoutMs: 500 }), /held by another process/);
      assert.equal(await portOpen(port), true);
    } finally {
      await other.stop();
    }
    assert.equal(await portOpen(port), false);
  });

  void it('waits for readyPath to answer below 500', async () => {
    const port = await freePort();
    // answers 503 for the first half second, then 200
    const src = `const t=Date.now();require('http').createServer((q,s)=>{s.statusCode=Date.now()-t<500?503:200;s.end()}).listen(${port},'127.0.0.1')`;
    const p = await startProcess({ name: 'slow-ready', cmd: process.execPath, args: ['-e', src], port, readyPath: '/' });
    try {
      const r = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(r.status, 200);
    } finally {
      await p.stop();
    }
  });
});

void describe('spawnChild', { timeout: 30_000 }, () => {
  void it('stop() reaches every process of the group', async () => {
    const c = await spawnChild('sh', ['-c', 'sleep 30 & sleep 30 & echo started; wait']);
    await c.waitForOutput('stdout', /started/, 5000);
    const members = await waitFor('three members in the group', () => (groupPids(c.pid).length === 3 ? groupPids(c.pid) : undefined));
    await c.stop();
    assert.equal((await c.exit).signal, 'SIGTERM');
    for (const pid of members) assert.equal(isAlive(pid), false, `pid ${pid} survived stop()`);
  });

  void it('stop() escalates to SIGKILL when the stop signal is ignored', async () => {
    const c = await spawnChild('sh', ['-c', 'trap "" TERM; echo ready; sleep 30 & wait'], { stopGraceMs: 300 });
    await c.waitForOutput('stdout', /ready/, 5000);
    await c.stop();
    assert.equal((await c.exit).signal, 'SIGKILL');
    assert.equal(groupPids(c.pid).length, 0);
  });

  void it('waitForOutput sees output written before the call and rejects once the child exits without it', async () => {
    const c = await spawnChild('sh', ['-c', 'echo one; echo two >&2; sleep 0.2; echo bye >&2']);
    await c.exit;
    assert.equal((await c.waitForOutput('stdout', /one/, 1000))[0], 'one');
    assert.equal((await c.waitForOutput('stderr', /two\nbye/, 1000))[0], 'two\nbye');
    await assert.rejects(c.waitForOutput('stdout', /never/, 5000), (err: Error) => /exited before/.test(err.message) && /bye/.test(err.message));
  });
});

void describe('run', { timeout: 30_000 }, () => {
  void it('returns exit code, output and pid; stdin gets the input', async () => {
    const r = await run('sh', ['-c', 'read x; echo "out:$x"; echo err >&2; exit 7'], { input: 'hello\n' });
    assert.equal(r.code, 7);
    assert.equal(r.stdout, 'out:hello\n');
    assert.equal(r.stderr, 'err\n');
    assert.ok(r.pid > 0);
    assert.equal(r.timedOut, false);
  });

  void it('sets and removes environment variables; never passes OTEL_SERVICE_NAME on by itself', async () => {
    const saved = process.env.OTEL_SERVICE_NAME;
    process.env.OTEL_SERVICE_NAME = 'the-parent';
    process.env.OSPREY_PROC_TEST = 'inherited';
    try {
      const r = await run('sh', ['-c', 'echo "${OTEL_SERVICE_NAME:-none} ${OSPREY_PROC_TEST:-gone} $A"'], { env: { A: 'set', OSPREY_PROC_TEST: undefined } });
      assert.equal(r.stdout, 'none gone set\n');
      const s = await run('sh', ['-c', 'echo "$OTEL_SERVICE_NAME $OSPREY_PROC_TEST"'], { env: { OTEL_SERVICE_NAME: 'child' } });
      assert.equal(s.stdout, 'child inherited\n');
    } finally {
      if (saved === undefined) delete process.env.OTEL_SERVICE_NAME;
      else process.env.OTEL_SERVICE_NAME = saved;
      delete process.env.OSPREY_PROC_TEST;
    }
  });

  void it('stops a program that runs past its timeout, with what it left running', async () => {
    const r = await run('sh', ['-c', 'sleep 30 & echo $!; wait'], { timeoutMs: 300 });
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, 'SIGTERM');
    const bg = Number(r.stdout.trim());
    assert.ok(bg > 0);
    assert.equal(isAlive(bg), false);
  });

  void it('rejects when the program does not exist', async () => {
    await assert.rejects(run('/nonexistent/osprey-no-such-program', []), /cannot start/);
  });
});

void describe('ports and waiting', () => {
  void it('freePort hands out listenable ports, never the same one twice', async () => {
    const ports = new Set<number>();
    for (let i = 0; i < 20; i++) ports.add(await freePort());
    assert.equal(ports.size, 20);
    const v6 = await freePort('::1');
    assert.ok(v6 > 0 && v6 < 65536);
  });

  void it('waitFor returns the first truthy value, or throws naming what it waited for', async () => {
    let n = 0;
    assert.equal(await waitFor('n to reach 3', () => ++n >= 3 && n, 1000, 5), 3);
    assert.equal(await waitFor('an async value', async () => 'x', 100), 'x');
    await assert.rejects(waitFor('never', () => false, 50), /timed out after 50 ms waiting for never/);
  });
});
