// Seeded byte mutations for the OTLP fuzz tests (HTTP and gRPC): every input can be made again
// from its seed, and both receivers are fed the same kinds of damage.

/** mulberry32: a small seeded generator, so a failing input can be made again */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * One damaged copy of b and what was done to it. `int(n)` draws from 0..n-1 (the caller's
 * seeded generator); `others` are bodies one may be spliced with.
 */
export function mutateBytes(b: Buffer, int: (n: number) => number, others: Buffer[] = []): [Buffer, string] {
  const out = Buffer.from(b);
  switch (int(8)) {
    case 0: {
      const n = 1 + int(8);
      for (let i = 0; i < n && out.length; i++) out[int(out.length)]! ^= 1 << int(8);
      return [out, `flip ${n} bits`];
    }
    case 1:
      return [out.subarray(0, int(out.length)), 'truncate'];
    case 2: {
      const at = int(out.length + 1);
      return [Buffer.concat([out.subarray(0, at), Buffer.from(Array.from({ length: 1 + int(16) }, () => int(256))), out.subarray(at)]), 'insert random bytes'];
    }
    case 3: {
      const a = int(out.length + 1);
      return [Buffer.concat([out.subarray(0, a), out.subarray(Math.min(out.length, a + 1 + int(32)))]), 'delete a range'];
    }
    case 4: {
      const a = int(out.length + 1);
      const len = int(64);
      return [Buffer.concat([out.subarray(0, a), out.subarray(a, a + len), out.subarray(a)]), 'duplicate a range'];
    }
    case 5: {
      const other = others.length ? others[int(others.length)]! : out;
      return [Buffer.concat([out.subarray(0, int(out.length + 1)), other.subarray(int(other.length + 1))]), 'splice two requests'];
    }
    case 6: {
      const at = int(out.length + 1);
      return [Buffer.concat([out.subarray(0, at), Buffer.alloc(1 + int(10), 0xff), out.subarray(at)]), 'varint overflow'];
    }
    default:
      for (let i = 0; i < 4 && out.length; i++) out[int(out.length)] = int(256);
      return [out, 'overwrite bytes'];
  }
}
