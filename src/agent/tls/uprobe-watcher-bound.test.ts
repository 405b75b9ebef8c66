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
