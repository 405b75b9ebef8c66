import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync, rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ProbeFamily } from './probe-family.js';
import { UprobeWatcher } from './uprobe-watcher.js';

// The /proc scan against real processes: a process's maps are read again only when its address
// space changed size, and a library it loads later (dlopen: Python imports ssl lazily) is still
// found at the next scan. The family reports the file without probes, so nothing is attached
// and the attacher must never be called.

const noAttach = {
  attachUprobe(): number {
    throw new Error('nothing is attached in this test');
  },
  detachUprobe(): boolean {
    throw new Error('nothing is attached in this test');
  },
};

/** pids seen mapping a libssl at the current scan (from the path the family is handed) */
let mapping = new Set<number>();

/** a family that notes every process mapping a libssl, and plans no probes for it */
const libssl: ProbeFamily = {
  name: 'libssl-seen',
  candidate: (m) => {
    if (!/\/libssl\.so[^/]*$/.test(m.path)) return false;
    mapping.add(Number(/^\/proc\/(\d+)\//.exec(m.openPath)![1]));
    return true;
  },
  plan: () => ({ level: 'stripped', reason: 'noted by the test' }),
};

function scan(w: UprobeWatcher): Set<number> {
  mapping = new Set();
  w.scan();
  return mapping;
}

function python(code: string): ChildProcess {
  return spawn('python3', ['-c', code], { stdio: ['ignore', 'pipe', 'inherit'] });
}

/** resolves once the child printed `word` */
function said(child: ChildProcess, word: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(word)) resolve();
    });
    child.on('exit', (code) => reject(new Error(`python exited ${code} before "${word}"`)));
  });
}

describe('uprobe watcher /proc scan', () => {
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) c.kill('SIGKILL');
  });

  it('reuses unchanged maps and finds a library loaded later', async () => {
    // loads libssl only when told to (a line on stdin would need a pipe; a file flag is simpler)
    const flag = `/tmp/osprey-uw-test-${process.pid}`;
    const child = python(
      [
        'import os, sys, time',
        'print("started", flush=True)',
        `while not os.path.exists(${JSON.stringify(flag)}): time.sleep(0.02)`,
        'import ssl',
        'print("loaded", flush=True)',
        'time.sleep(60)',
      ].join('\n'),
    );
    children.push(child);
    await said(child, 'started');
    const w = new UprobeWatcher(noAttach, { families: [libssl] });
    assert.ok(!scan(w).has(child.pid!), 'python maps no libssl before it imports ssl');
    scan(w);
    // the second scan read maps again only where their size moved: some were reused
    assert.ok(w.counters.maps_reused > 0, JSON.stringify(w.counters));
    assert.ok(!scan(w).has(child.pid!));

    writeFileSync(flag, '');
    try {
      await said(child, 'loaded');
    } finally {
      rmSync(flag, { force: true });
    }
    // loading the library grew the address space: its maps are read again
    assert.ok(scan(w).has(child.pid!), `libssl loaded by pid ${child.pid} was not found`);
    const reused = w.counters.maps_reused;
    // and from then on, with nothing loaded, reused and still counted
    const again = scan(w);
    assert.ok(again.has(child.pid!));
    assert.ok(w.counters.maps_reused > reused);
    w.stop();
  });

  it('a process gone is forgotten: its files are no longer counted', async () => {
    const child = python('import ssl, time\nprint("loaded", flush=True)\ntime.sleep(60)');
    children.push(child);
    await said(child, 'loaded');
    const w = new UprobeWatcher(noAttach, { families: [libssl] });
    assert.ok(scan(w).has(child.pid!));
    assert.ok(scan(w).has(child.pid!), 'reused maps still count the process');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    await sleep(50);
    assert.ok(!scan(w).has(child.pid!), 'an exited process maps nothing');
    w.stop();
  });
});
