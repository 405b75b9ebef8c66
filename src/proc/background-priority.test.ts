import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { getPriority } from 'node:os';
import { Worker } from 'node:worker_threads';
import { BackgroundPriority, threadNice } from './background-priority.js';

describe('BackgroundPriority', () => {
  it('lowers every thread of the process but the JS thread, also threads started later', async () => {
    const base = getPriority(process.pid);
    const bp = new BackgroundPriority(3);
    assert.equal(bp.nice, Math.min(19, base + 3));
    assert.equal(bp.base, base);
    const first = bp.apply();
    assert.ok(first > 0, 'node has helper threads (V8 platform workers) from the start');
    const tids = () => readdirSync(`/proc/${process.pid}/task`).map(Number);
    for (const tid of tids()) assert.equal(threadNice(process.pid, tid), tid === process.pid ? base : bp.nice, `thread ${tid}`);
    // a thread started afterwards is lowered by the next pass, the others are not touched again
    const w = new Worker('setTimeout(() => {}, 5000)', { eval: true });
    await new Promise((r) => w.once('online', r));
    const before = new Set(tids());
    assert.ok(bp.apply() >= 1, 'the worker thread is lowered');
    bp.apply();
    const now = tids();
    for (const tid of now) assert.equal(threadNice(process.pid, tid), tid === process.pid ? base : bp.nice, `thread ${tid}`);
    assert.ok(before.size >= 2);
    assert.equal(bp.counters.threads_lowered, now.length - 1);
    assert.equal(bp.counters.errors, 0);
    await w.terminate();
    // the JS thread kept its priority throughout
    assert.equal(getPriority(process.pid), base);
  });

  it('refuses a nice value outside 1..19', () => {
    assert.throws(() => new BackgroundPriority(0), /from 1 to 19/);
    assert.throws(() => new BackgroundPriority(20), /from 1 to 19/);
    assert.throws(() => new BackgroundPriority(2.5), /from 1 to 19/);
  });
});
