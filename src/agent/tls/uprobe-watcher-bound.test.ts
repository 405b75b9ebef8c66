// The uprobe watcher's bound and lifecycle against the real /proc: two copies of a real
// executable run as processes; a family probes exactly those two files. With a bound of one
// file, one is attached and the other listed as over the bound (counted); when the attached
// file's process exits, the next scan detaches it and the waiting file gets its turn. The
// capture is a recording stand-in (no kernel): what is checked is which files the watcher asks
// to attach and detach, and what it reports. With a linger period, a file whose process exited
// keeps its probes and counts against the bound; a new file makes the longest-unused lingering
// file go, and waits while its detach (off the JS thread with the real capture) is under way.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UprobeTarget } from '../../kernel/index.js';
import type { ProbeFamily } from './probe-family.js';
import { UprobeWatcher } from './uprobe-watcher.js';

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'osprey-watcher-')));
const children: ChildProcess[] = [];

async function running(path: string): Promise<ChildProcess> {
  const c = spawn(path, ['30'], { stdio: 'ignore' });
  children.push(c);
  // mapped once the exec is done: /proc/<pid>/exe is the copy
  await new Promise<void>((resolve, reject) => {
    c.once('spawn', () => resolve());
    c.once('error', reject);
  });
  return c;
}

async function exited(c: ChildProcess): Promise<void> {
  const done = new Promise((resolve) => c.once('exit', resolve));
  c.kill('SIGKILL');
  await done;
}

describe('UprobeWatcher', () => {
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) await exited(c);
    rmSync(dir, { recursive: true, force: true });
  });

  it('at most maxFiles files have probes; the rest wait, counted, and get their turn when one goes', async () => {
    const [a, b] = [join(dir, 'sleep-a'), join(dir, 'sleep-b')];
    copyFileSync('/bin/sleep', a);
    copyFileSync('/bin/sleep', b);
    const attached: string[] = [];
    const detached: number[] = [];
    let next = 1;
    const cap = {
      attachUprobe(t: UprobeTarget): number {
        attached.push(t.path.replace(/^\/proc\/\d+\/root/, ''));
        return next++;
      },
      detachUprobe(link: number): boolean {
        detached.push(link);
        return true;
      },
    };
    const family: ProbeFamily = {
      name: 'test',
      candidate: (f) => f.path === a || f.path === b,
      plan: () => [{ program: 'osp_test', offset: 0x1000, retprobe: false, label: 'entry' }],
    };
    const w = new UprobeWatcher(cap, { families: [family], maxFiles: 1, scanMs: 3_600_000, lingerMs: 0 });
    const status = (): Record<string, string> => Object.fromEntries(w.files().map((f) => [f.path, f.status]));
    // scans until the process's maps show its copy (its exec may still be under way)
    const seen = async (path: string): Promise<void> => {
      for (let i = 0; i < 100 && !(path in status()); i++) {
        w.scan();
        if (!(path in status())) await new Promise((r) => setTimeout(r, 20));
      }
    };
    const pa = await running(a);
    await seen(a);
    const pb = await running(b);
    await seen(b);
    assert.deepEqual(status(), { [a]: 'attached', [b]: 'over-limit' });
    assert.deepEqual(attached, [a], 'only one file was attached');
    assert.equal(w.counters.files_over_limit, 1);
    assert.equal(w.counters.attached_now, 1);
    assert.match(w.files().find((f) => f.path === b)!.reason ?? '', /1 files have probes already/);

    await exited(pa);
    w.scan();
    assert.deepEqual(detached, [1], "a's probe came off when no process mapped it");
    assert.deepEqual(status(), { [b]: 'attached' }, 'b had its turn');
    assert.deepEqual(attached, [a, b]);
    assert.equal(w.counters.files_detached, 1);
    assert.equal(w.counters.attached_now, 1);

    await exited(pb);
    w.scan();
    assert.deepEqual(status(), {});
    assert.equal(w.counters.attached_now, 0);
    assert.equal(w.counters.probes_now, 0);
  });

  it('lingering files count against the bound: the longest-unused one goes for a new file, which waits for its detach', async () => {
    const paths = ['a', 'b', 'c'].map((n) => join(dir, `linger-${n}`));
    for (const p of paths) copyFileSync('/bin/sleep', p);
    const [a, b, c] = paths as [string, string, string];
    const attached: string[] = [];
    const detached: number[][] = [];
    const done: (() => void)[] = [];
    const linkFile = new Map<number, string>();
    let next = 1;
    // detachUprobes resolves when the test says so, like the capture's worker thread
    const cap = {
      attachUprobe(t: UprobeTarget): number {
        const p = t.path.replace(/^\/proc\/\d+\/root/, '');
        attached.push(p);
        linkFile.set(next, p);
        return next++;
      },
      detachUprobe(): boolean {
        throw new Error('the watcher detaches through detachUprobes when the capture has it');
      },
      detachUprobes(links: readonly number[]): Promise<number> {
        detached.push([...links]);
        return new Promise((resolve) => done.push(() => resolve(1)));
      },
    };
    const family: ProbeFamily = {
      name: 'test',
      candidate: (f) => paths.includes(f.path),
      plan: () => [{ program: 'osp_test', offset: 0x1000, retprobe: false, label: 'entry' }],
    };
    const w = new UprobeWatcher(cap, { families: [family], maxFiles: 2, scanMs: 3_600_000, lingerMs: 3_600_000 });
    const status = (): Record<string, string> => Object.fromEntries(w.files().map((f) => [f.path, f.status]));
    const seen = async (path: string): Promise<void> => {
      for (let i = 0; i < 100 && !(path in status()); i++) {
        w.scan();
        if (!(path in status())) await new Promise((r) => setTimeout(r, 20));
      }
    };
    const pa = await running(a);
    await seen(a);
    const pb = await running(b);
    await seen(b);
    await exited(pa);
    w.scan();
    await new Promise((r) => setTimeout(r, 5));
    await exited(pb);
    w.scan();
    // both linger (a longer), both count
    assert.deepEqual(status(), { [a]: 'attached', [b]: 'attached' });
    assert.equal(w.counters.lingering_now, 2);
    assert.equal(w.counters.attached_now, 2);
    assert.equal(detached.length, 0, "nothing detached yet");
    assert.ok(w.files().every((f) => f.idleMs !== undefined && f.processes === 0));

    const pc = await running(c);
    await seen(c);
    // c needs room: a, unused the longest, is being detached; c waits for it
    assert.deepEqual(detached.map((ls) => ls.map((l) => linkFile.get(l))), [[a]]);
    assert.deepEqual(status(), { [a]: 'detaching', [b]: 'attached', [c]: 'over-limit' });
    assert.equal(w.counters.detached_for_room, 1);
    assert.equal(w.counters.files_over_limit, 0, 'waiting for room is not being left out');
    w.scan();
    assert.equal(detached.length, 1, 'no second file goes for the same waiting one');
    done.shift()!();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(status(), { [b]: 'attached', [c]: 'attached' }, 'c attached once a was off');
    assert.deepEqual(attached, [a, b, c]);
    assert.equal(w.counters.attached_now, 2);
    assert.equal(w.counters.lingering_now, 1);
    await exited(pc);
    w.stop();
    assert.equal(detached.length, 3, 'stop detaches every file');
  });
});

describe('UprobeWatcher processes', () => {
  const pdir = realpathSync(mkdtempSync(join(tmpdir(), 'osprey-watcher-')));
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) await exited(c);
    rmSync(pdir, { recursive: true, force: true });
  });

  it('a file attached between scans (again after its detach, or after waiting for room) tells its family of the processes running it at once', async () => {
    const paths = ['a', 'b'].map((n) => join(pdir, `procs-${n}`));
    for (const p of paths) copyFileSync('/bin/sleep', p);
    const [a, b] = paths as [string, string];
    const done: (() => void)[] = [];
    let next = 1;
    const cap = {
      attachUprobe: (): number => next++,
      detachUprobe(): boolean {
        throw new Error('the watcher detaches through detachUprobes when the capture has it');
      },
      // resolves when the test says so, like the capture's worker thread
      detachUprobes: (): Promise<number> => new Promise((resolve) => done.push(() => resolve(1))),
    };
    // what the family was told, like the runtime-context family's go_procs/rt_procs entries
    const told: string[] = [];
    const family: ProbeFamily = {
      name: 'test',
      candidate: (f) => paths.includes(f.path),
      plan: () => [{ program: 'osp_test', offset: 0x1000, retprobe: false, label: 'entry' }],
      processMapped: (pid) => told.push(`+${pid}`),
      processGone: (pid) => told.push(`-${pid}`),
    };
    const w = new UprobeWatcher(cap, { families: [family], maxFiles: 1, scanMs: 3_600_000, lingerMs: 0 });
    const file = (path: string) => w.files().find((f) => f.path === path);
    // scans until the process's maps show its copy (its exec may still be under way)
    const mapped = async (path: string): Promise<void> => {
      for (let i = 0; i < 100 && !(file(path)?.processes === 1); i++) {
        w.scan();
        if (!(file(path)?.processes === 1)) await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(file(path)?.processes, 1, path);
    };
    const p1 = await running(a);
    await mapped(a);
    assert.deepEqual(told, [`+${p1.pid}`]);
    await exited(p1);
    w.scan();
    assert.equal(file(a)?.status, 'detaching');
    assert.deepEqual(told, [`+${p1.pid}`, `-${p1.pid}`]);

    // a runs again while its old probes come off; b waits for room meanwhile
    const p2 = await running(a);
    await mapped(a);
    const p3 = await running(b);
    await mapped(b);
    assert.equal(file(a)?.status, 'detaching');
    assert.equal(file(b)?.status, 'over-limit');
    assert.equal(told.length, 2, 'nothing attached: nobody told');
    done.shift()!();
    await new Promise((r) => setImmediate(r));
    assert.equal(file(a)?.status, 'attached');
    assert.equal(w.counters.reattach_waited, 1);
    assert.deepEqual(told.slice(2), [`+${p2.pid}`], 'the process running a heard of it with its new probes, not a scan later');

    // a goes; b, attached once a's probes are off, tells of its process at once too
    await exited(p2);
    w.scan();
    done.shift()!();
    await new Promise((r) => setImmediate(r));
    assert.equal(file(b)?.status, 'attached');
    assert.deepEqual(told.slice(3), [`-${p2.pid}`, `+${p3.pid}`]);
    // the next scan tells nothing twice
    w.scan();
    assert.equal(told.length, 5);
    await exited(p3);
    w.scan();
    assert.deepEqual(told.slice(5), [`-${p3.pid}`]);
    w.stop();
    for (const d of done) d();
  });
});

describe('UprobeWatcher linger', () => {
  it('a file deleted while mapped does not linger: its probes come off at the first scan that sees nobody', async () => {
    const { unlinkSync } = await import('node:fs');
    // a directory of its own: the suite above removes `dir` when it ends
    const own = realpathSync(mkdtempSync(join(tmpdir(), 'osprey-watcher-del-')));
    const p = join(own, 'deleted-bin');
    copyFileSync('/bin/sleep', p);
    const detached: number[] = [];
    const cap = {
      attachUprobe: (): number => 7,
      detachUprobe(link: number): boolean {
        detached.push(link);
        return true;
      },
    };
    const family: ProbeFamily = { name: 'test', candidate: (f) => f.path === p, plan: () => [{ program: 'osp_test', offset: 0x1000, retprobe: false, label: 'entry' }] };
    const w = new UprobeWatcher(cap, { families: [family], scanMs: 3_600_000, lingerMs: 3_600_000 });
    const pr = await running(p);
    for (let i = 0; i < 100 && w.counters.attached_now === 0; i++) {
      w.scan();
      if (w.counters.attached_now === 0) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(w.counters.attached_now, 1);
    unlinkSync(p);
    await exited(pr);
    w.scan();
    assert.deepEqual(detached, [7], 'detached at once, not lingering');
    assert.equal(w.counters.detached_not_on_host, 1);
    assert.equal(w.counters.lingering_now, 0);
    w.stop();
    rmSync(own, { recursive: true, force: true });
  });
});

describe('which files may linger', () => {
  it('onOwnRoot: the path still names the mapped inode, not a deleted file or another inode', async () => {
    const { onOwnRoot: onHostRoot } = await import('./uprobe-watcher.js');
    const { statSync, unlinkSync, writeFileSync } = await import('node:fs');
    const p = join(realpathSync(tmpdir()), `osprey-onhost-${process.pid}`);
    writeFileSync(p, 'x');
    const st = statSync(p, { bigint: true });
    const dev = st.dev;
    const major = (((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn)).toString(16).padStart(2, '0');
    const minor = ((dev & 0xffn) | ((dev >> 12n) & ~0xffn)).toString(16).padStart(2, '0');
    // the same triple /proc/<pid>/maps prints for a mapping of it
    const file = `${major}:${minor}:${st.ino}`;
    assert.equal(onHostRoot(p, file), true);
    assert.equal(onHostRoot(p, `${major}:${minor}:${st.ino + 1n}`), false, 'another inode at that path (a replaced file)');
    unlinkSync(p);
    assert.equal(onHostRoot(p, file), false, 'deleted');
    assert.equal(onHostRoot('/no/such/file', file), false);
  });

  it('onOwnRoot: a mapped file as /proc/<pid>/maps names it; sameMountNs: a process of this namespace, not another', async () => {
    const { onOwnRoot: onHostRoot, sameMountNs } = await import('./uprobe-watcher.js');
    const { readFileSync } = await import('node:fs');
    // this process's own node executable, from its maps line
    const line = readFileSync('/proc/self/maps', 'utf8').split('\n').find((l) => / r-xp /.test(l) && l.includes('/'))!;
    const f = line.split(/\s+/);
    assert.equal(onHostRoot(line.slice(line.indexOf('/')), `${f[3]}:${f[4]}`), true, line);
    assert.equal(sameMountNs(`/proc/${process.pid}/root/usr/bin/node`), true);
    assert.equal(sameMountNs('/usr/bin/node'), false, 'not opened through a process root');
    assert.equal(sameMountNs('/proc/999999999/root/x'), false, 'gone');
    // a process in a mount namespace of its own (unshare -m, as a container's)
    const c = spawn('unshare', ['-m', 'sleep', '30'], { stdio: 'ignore' });
    children.push(c);
    let pid = 0;
    for (let i = 0; i < 100 && !pid; i++) {
      await new Promise((r) => setTimeout(r, 20));
      try {
        // unshare execs sleep in the same process once the namespace is made
        if (readFileSync(`/proc/${c.pid}/comm`, 'utf8').trim() === 'sleep') pid = c.pid!;
      } catch {
        break;
      }
    }
    assert.ok(pid, 'unshare -m started sleep');
    assert.equal(sameMountNs(`/proc/${pid}/root/usr/bin/sleep`), false, 'another mount namespace');
    await exited(c);
  });
});
