import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { newSpanWords, newTraceId } from './ids.js';

describe('ids', () => {
  it('span ids: 200,000 drawn, none zero, none repeated, every bit set about half the time', () => {
    const seen = new Set<string>();
    const ones = new Array<number>(64).fill(0);
    const w = { s0: 0, s1: 0 };
    const n = 200_000;
    for (let i = 0; i < n; i++) {
      newSpanWords(w);
      assert.notEqual(w.s0 | w.s1, 0);
      seen.add(`${w.s0},${w.s1}`);
      for (let b = 0; b < 32; b++) {
        ones[b]! += (w.s0 >>> b) & 1;
        ones[32 + b]! += (w.s1 >>> b) & 1;
      }
    }
    assert.equal(seen.size, n);
    // a fair bit: 100,000 ± 5 standard deviations (224)
    for (let b = 0; b < 64; b++) assert.ok(Math.abs(ones[b]! - n / 2) < 1200, `bit ${b}: ${ones[b]} of ${n}`);
  });

  it('trace ids: distinct words, never all zero', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50_000; i++) {
      const t = newTraceId();
      assert.notEqual(t.w0 | t.w1 | t.w2 | t.w3, 0);
      seen.add(`${t.w0},${t.w1},${t.w2},${t.w3}`);
    }
    assert.equal(seen.size, 50_000);
  });
});
