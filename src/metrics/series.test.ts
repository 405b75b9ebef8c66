// NsHistogram: its counts, and one V8 object layout (map) whatever it holds. A histogram made
// while its sums were small integers must not be left with a deprecated layout once another
// one's sum passes the small-integer range (see the note on NsHistogram's totals).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { NsHistogram, SPAN_METRICS_BUCKETS, boundsToNs } from './series.js';

setFlagsFromString('--allow-natives-syntax');
// compiled after the flag is set, so that the parser accepts V8's runtime call (source text is
// the only way to reach it)
// eslint-disable-next-line @typescript-eslint/no-implied-eval -- a constant string, not input
const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

const B = boundsToNs(SPAN_METRICS_BUCKETS);

it('counts, sums and weights as observed; merge adds', () => {
  const h = new NsHistogram(B);
  h.observe(1_000_000, B); // 1 ms: first bucket (≤ 2 ms)
  h.observe(3_000_000, B); // 3 ms: second (≤ 4 ms)
  h.observe(20e9, B); // past the last bound: +Inf
  h.observe(3_000_000, B, -1); // taken out again
  assert.equal(h.count, 2);
  assert.equal(h.sumNs, 1_000_000 + 20e9);
  assert.deepEqual([...h.counts], [1, 0, ...Array<number>(B.length - 2).fill(0), 1]);
  const m = new NsHistogram(B);
  m.merge(h.counts, h.sumNs, h.count);
  m.merge(h.counts, h.sumNs, h.count);
  assert.equal(m.count, 4);
  assert.equal(m.sumNs, 2 * (1_000_000 + 20e9));
  assert.equal(m.counts[0], 2);
});

it('a histogram keeps the layout of a new one after another histogram held large sums', () => {
  const early = new NsHistogram(B);
  early.observe(5, B); // small integers only
  const large = new NsHistogram(B);
  large.observe(3e9, B); // past 2^30: not a V8 small integer
  large.observe(0.5, B);
  large.merge(large.counts, 2 ** 40, 2 ** 31);
  const fresh = new NsHistogram(B);
  assert.ok(sameMap(early, fresh), 'a histogram made before large sums has a layout of its own');
  assert.ok(sameMap(large, fresh));
  assert.equal(early.sumNs, 5);
  assert.equal(large.count, 2 + 2 ** 31);
});
