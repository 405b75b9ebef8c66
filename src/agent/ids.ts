// Random trace and span ids, hex, drawn from a pooled buffer (one syscall per 4 KiB).
import { randomFillSync } from 'node:crypto';

const pool = Buffer.alloc(4096);
let pos = pool.length;

function hex(bytes: number): string {
  for (;;) {
    if (pos + bytes > pool.length) {
      randomFillSync(pool);
      pos = 0;
    }
    const start = pos;
    pos += bytes;
    // all-zero ids are invalid in W3C trace context (one in 2^64: just draw again)
    for (let i = start; i < pos; i++) if (pool[i] !== 0) return pool.toString('hex', start, pos);
  }
}

export const newTraceId = (): string => hex(16);
export const newSpanId = (): string => hex(8);

/** W3C traceparent: version-traceid-parentid-flags; undefined when invalid */
export function parseTraceparent(v: string | undefined): { traceId: string; spanId: string } | undefined {
  if (!v) return undefined;
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})/.exec(v.trim().toLowerCase());
  if (!m || m[1] === 'ff') return undefined;
  if (/^0+$/.test(m[2]!) || /^0+$/.test(m[3]!)) return undefined;
  return { traceId: m[2]!, spanId: m[3]! };
}
