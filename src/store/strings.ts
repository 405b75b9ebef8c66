// The codes of the SPAN_CODED columns (schema.ts): a string's code is a row of the `strings`
// table, given by the writer the first time it meets the string. Codes are never reused, so a
// code means one string for the life of the store; the maps here are caches of the table and
// forget everything beyond a bound, after which a string met again gets a new code (the table
// then holds it under both, which the queries allow for). Why not a hash of the string as its
// code: a random 64-bit number does not bit-pack (8 bytes per row and column against ~1-2), and
// a collision would silently merge two strings.

import { LIST, UINTEGER, listValue } from '@duckdb/node-api';
import { Params } from './compile.js';

/** codes remembered in each direction; beyond it the maps start over */
export const STRINGS_CACHED = 65_536;

export class StringCodes {
  /** string → its latest code, for the writer */
  private readonly codeOf = new Map<string, number>();
  /** code → string, for reading rows back */
  private readonly textOf = new Map<number, string>();
  /** the next code to give */
  next = 1;
  /** times the maps started over: a batch begun before the last time may use codes no longer cached */
  clears = 0;
  /** `next` when retention last deleted the strings no span uses (Retention.collectStrings) */
  collectedAt = 1;

  constructor(private readonly bound = STRINGS_CACHED) {}

  /** the code of s; a new one is pushed onto `fresh` (rows the writer must store before the spans using them) */
  code(s: string, fresh: [number, string][]): number {
    const got = this.codeOf.get(s);
    if (got !== undefined) return got;
    const id = this.next++;
    if (this.codeOf.size >= this.bound) {
      this.codeOf.clear();
      this.clears++;
    }
    this.codeOf.set(s, id);
    this.remember(id, s);
    fresh.push([id, s]);
    return id;
  }

  /** the codes the writer hands out again without looking them up */
  cached(): number[] {
    return [...this.codeOf.values()];
  }

  /** notes a stored code (read from the table, or just given) */
  remember(id: number, s: string): void {
    if (this.textOf.size >= this.bound) this.textOf.clear();
    this.textOf.set(id, s);
  }

  /** what the store's table holds when it opens: the latest codes, and where to go on */
  load(rows: readonly (readonly [number, string])[], maxId: number): void {
    for (const [id, s] of rows) {
      const prev = this.codeOf.get(s);
      if (prev === undefined || prev < id) this.codeOf.set(s, id);
      this.textOf.set(id, s);
    }
    this.next = Math.max(this.next, maxId + 1);
    this.collectedAt = this.next;
  }

  /** the strings of `ids`, reading the ones not cached from the table with `query` */
  async texts(ids: Iterable<number>, query: (sql: string, P: Params) => Promise<unknown[][]>): Promise<ReadonlyMap<number, string>> {
    const out = new Map<number, string>();
    const missing: number[] = [];
    for (const id of ids) {
      if (out.has(id)) continue;
      const s = this.textOf.get(id);
      if (s === undefined) missing.push(id);
      else out.set(id, s);
    }
    if (missing.length > 0) {
      const P = new Params();
      const rows = await query(`SELECT id, s FROM strings WHERE id IN (SELECT unnest(${P.add(listValue(missing), LIST(UINTEGER))}))`, P);
      for (const [id, s] of rows) {
        out.set(Number(id), String(s));
        this.remember(Number(id), String(s));
      }
    }
    return out;
  }
}
