// Random trace and span ids, hex, drawn from a pooled buffer (one syscall per 4 KiB).
import { randomFillSync } from 'node:crypto';

const pool = Buffer.alloc(4096);
let pos = pool.length;

function hex(bytes: number): string {
  if (pos + bytes > pool.length) {
    randomFillSync(pool);
    pos = 0;
  }
  const s = pool.toString('hex', pos, pos + bytes);
  pos += bytes;
  // all-zero ids are invalid in W3C trace context
  return /^0+$/.test(s) ? hex(bytes) : s;
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
