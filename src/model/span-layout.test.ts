// Span: one V8 object layout (map) whatever its numbers hold. A span made while every value was
// a small integer must not be left on a deprecated layout once another span holds an id word
// past 2^30 or a duration past 1.07 s (see the note on Span's static block).
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { Span } from './index.js';

setFlagsFromString('--allow-natives-syntax');
// compiled after the flag is set, so that the parser accepts V8's runtime call (source text is
// the only way to reach it)
// eslint-disable-next-line @typescript-eslint/no-implied-eval -- a constant string, not input
const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

it('a span keeps the layout of a new one after another span held large numbers', () => {
  const early = new Span();
  early.durationNano = 1000; // small integers only
  early.s0 = 7;
  const slow = new Span();
  slow.durationNano = 3e9; // 3 s: past 2^30 ns
  slow.t0 = 0xffff_ffff;
  slow.startLo = 0x8000_0000;
  const fresh = new Span();
  assert.ok(sameMap(early, fresh), 'a span made before large numbers has a layout of its own');
  assert.ok(sameMap(slow, fresh));
  assert.equal(early.durationNano, 1000);
  assert.equal(fresh.durationNano, 0);
  assert.equal(fresh.t0, 0);
});
