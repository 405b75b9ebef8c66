// Trace and span ids as 32-bit words, never as hex strings on the hot path: a trace id is
// four words and a span id two, most significant first (the order of their hex form), each
// kept as a signed 32-bit integer so V8 stores it unboxed (a small integer). Hex exists only
// where a person or a wire format reads it (span JSON, OTLP/JSON, the CLI).
import { randomFillSync } from 'node:crypto';

/** A trace id; shared by reference between the records of one trace, never mutated. */
export interface TraceId {
  readonly w0: number;
  readonly w1: number;
  readonly w2: number;
  readonly w3: number;
}

// Random words from xoshiro128** (Blackman and Vigna), seeded from the OS's random source and
// stirred with more of it every 2^16 words. An id must be unique and random, not unguessable:
// W3C trace context asks no more, and OpenTelemetry's JS SDK draws ids from Math.random. The
// OS's generator drawn 4 KiB at a time was 2% of the agent's CPU at 500k spans/s.
const seed = new Int32Array(4);
let x0 = 0;
let x1 = 0;
let x2 = 0;
let x3 = 0;
let left = 0;

function stir(): void {
  randomFillSync(seed);
  x0 ^= seed[0]!;
  x1 ^= seed[1]!;
  x2 ^= seed[2]!;
  x3 ^= seed[3]!;
  // the all-zero state is the one xoshiro cannot leave
  if ((x0 | x1 | x2 | x3) === 0) x0 = 1;
  left = 65536;
}

function word(): number {
  if (left-- <= 0) stir();
  const m = Math.imul(x1, 5);
  const r = Math.imul((m << 7) | (m >>> 25), 9);
  const t = x1 << 9;
  x2 ^= x0;
  x3 ^= x1;
  x1 ^= x2;
  x0 ^= x3;
  x2 ^= t;
  x3 = (x3 << 11) | (x3 >>> 21);
  return r | 0;
}

export function newTraceId(): TraceId {
  for (;;) {
    const t = { w0: word(), w1: word(), w2: word(), w3: word() };
    // all-zero ids are invalid in W3C trace context (one in 2^128: just draw again)
    if ((t.w0 | t.w1 | t.w2 | t.w3) !== 0) return t;
  }
}

/** a new span id's two words; all-zero is invalid (it means "no parent"), so never drawn */
export function newSpanWords(out: { s0: number; s1: number }): void {
  do {
    out.s0 = word();
    out.s1 = word();
  } while ((out.s0 | out.s1) === 0);
}

/** 8 lowercase hex digits of a word */
export function hex32(w: number): string {
  return (w >>> 0).toString(16).padStart(8, '0');
}

export function traceHex(t: TraceId): string {
  return hex32(t.w0) + hex32(t.w1) + hex32(t.w2) + hex32(t.w3);
}

/** 16 hex digits of a span id; '' for the all-zero id (no parent) */
export function spanHex(w0: number, w1: number): string {
  return (w0 | w1) === 0 ? '' : hex32(w0) + hex32(w1);
}

const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX[97 + i] = 10 + i;
  HEX[65 + i] = 10 + i;
}

/** the word of 8 hex digits of s at `from`; NaN when one is not a hex digit */
export function wordAt(s: string, from: number): number {
  let v = 0;
  for (let i = from; i < from + 8; i++) {
    const c = s.charCodeAt(i);
    const d = c < 128 ? (HEX[c] as number) : -1;
    if (d < 0) return NaN;
    v = v * 16 + d;
  }
  return v | 0;
}

/** a trace id from 32 hex digits; undefined when it is not one */
export function traceFromHex(s: string): TraceId | undefined {
  if (s.length !== 32) return undefined;
  const t = { w0: wordAt(s, 0), w1: wordAt(s, 8), w2: wordAt(s, 16), w3: wordAt(s, 24) };
  return Number.isNaN(t.w0) || Number.isNaN(t.w1) || Number.isNaN(t.w2) || Number.isNaN(t.w3) ? undefined : t;
}

/** a span id from 16 hex digits as [w0, w1]; undefined when it is not one ('' is [0, 0]) */
export function spanFromHex(s: string): [number, number] | undefined {
  if (s === '') return [0, 0];
  if (s.length !== 16) return undefined;
  const a = wordAt(s, 0);
  const b = wordAt(s, 8);
  return Number.isNaN(a) || Number.isNaN(b) ? undefined : [a, b];
}

/** W3C traceparent (version-traceid-parentid-flags) → trace id and the caller's span id words */
export function parseTraceparent(v: string | undefined): { trace: TraceId; s0: number; s1: number } | undefined {
  if (!v) return undefined;
  const m = /^\s*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})/i.exec(v);
  if (!m || m[1]!.toLowerCase() === 'ff') return undefined;
  const trace = traceFromHex(m[2]!)!;
  const s0 = wordAt(m[3]!, 0);
  const s1 = wordAt(m[3]!, 8);
  if ((trace.w0 | trace.w1 | trace.w2 | trace.w3) === 0 || (s0 | s1) === 0) return undefined;
  return { trace, s0, s1 };
}
