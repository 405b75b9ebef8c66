// What the store's modules share: the DuckDB instance and its reader pool, the resource
// registry (one row per process in `resources`), the span attribute keys seen so far, and
// turning rows back into spans. DuckStore (duckstore.ts) owns one; the writer, the queries,
// the rollups and retention work through it.

import {
  DuckDBAppender,
  DuckDBConnection,
  DuckDBInstance,
  DuckDBUUIDValue,
  LIST,
  UINTEGER,
  listValue,
  type DuckDBValue,
} from '@duckdb/node-api';
import { Span, type Attributes } from '../model/index.js';
import { Params } from './compile.js';
import { HOT_KEYS } from './attrs.js';
import { HOT_SPAN_ATTRS, KIND_BY_CODE, SPAN_CODED, SPAN_ENUMS, STATUS_BY_CODE, decodeSql } from './schema.js';
import { STRINGS_CACHED, StringCodes } from './strings.js';

export type Row = DuckDBValue[];

/** hot attribute columns, in HOT_KEYS order */
const HOT_COLUMNS = HOT_KEYS.map((k) => (HOT_SPAN_ATTRS[k] as readonly [string, string])[0]);
export const SPAN_SELECT = `start_ns, duration_ns, trace_id, span_id, parent_span_id, name, kind, status, status_message, res_id, ${HOT_COLUMNS.join(', ')}, attributes`;
const ATTRS_AT = 10 + HOT_COLUMNS.length;

/** a row's attributes into the span: hot columns into their fields, the JSON into `extra` */
function setRowAttributes(span: Span, r: Row): void {
  for (let h = 0; h < HOT_KEYS.length; h++) {
    const v = r[10 + h];
    if (v !== null && v !== undefined) span.setHot(h, v as string | number);
  }
  const json = r[ATTRS_AT];
  if (json === null || json === undefined) return;
  const extra = JSON.parse(String(json)) as Attributes;
  // a string an ENUM column has no code for was stored in the JSON (writer.ts): back to its field
  let moved = false;
  for (const h of ENUM_HOT) {
    const key = HOT_KEYS[h] as string;
    const v = extra[key];
    if (typeof v !== 'string') continue;
    span.setHot(h, v);
    delete extra[key];
    moved = true;
  }
  if (!moved || Object.keys(extra).length > 0) span.extra = extra;
}

/** hot attributes (HOT_KEYS indexes) with an ENUM column in new stores */
const ENUM_HOT = HOT_COLUMNS.flatMap((col, h) => (SPAN_ENUMS[col] ? [h] : []));
/** positions in a SPAN_SELECT row of the columns that hold codes in new stores (schema.ts SPAN_CODED), with their columns */
const CODED_AT: readonly (readonly [number, string])[] = [
  [5, 'name'],
  ...HOT_COLUMNS.flatMap((col, h) => (SPAN_CODED.has(col) ? [[10 + h, col] as const] : [])),
];

export interface ResourceEntry {
  id: number;
  json: string;
  attrs: Attributes;
  service: string | null;
  namespace: string | null;
}

export class StoreCore {
  readonly resByKey = new Map<string, ResourceEntry>();
  readonly resById = new Map<number, ResourceEntry>();
  /** ids deleted by the last resource GC; forgotten by the next one (queries in flight may still resolve them) */
  retiredResources: number[] = [];
  nextResId = 1;
  /** every span attribute key stored so far, unless there were too many */
  readonly spanKeys = new Set<string>();
  spanKeysOverflow = false;
  /**
   * per hot string column of SPAN_ENUMS, the values of its ENUM in this store's table, or null
   * when the column is a VARCHAR (a store made before them); read when the store opens
   * (SpanWriter.openAppenders). Undefined before that: queries then read the JSON too.
   */
  enumColumns: ReadonlyMap<string, ReadonlySet<string> | null> | undefined;
  /** CompileContext.enumValues for this store */
  readonly enumValues = (column: string): ReadonlySet<string> | null | undefined => this.enumColumns?.get(column);
  /**
   * the SPAN_CODED columns that hold codes in this store's table (a store made before has them
   * as VARCHAR); read when the store opens (SpanWriter.openAppenders)
   */
  codedColumns: ReadonlySet<string> = new Set();
  /** CompileContext.coded for this store */
  readonly coded = (column: string): boolean => this.codedColumns.has(column);
  /** the codes of the coded columns' strings */
  readonly strings = new StringCodes();
  /** SQL: the value of `expr`, a string column `col` of spans: decoded when this store has codes in it */
  text(expr: string, col: string): string {
    return this.codedColumns.has(col) ? decodeSql(expr) : expr;
  }
  closed = false;
  /** spans stored (committed) */
  rows = 0;
  readonly inflight = new Set<Promise<unknown>>();
  readonly idleReaders: DuckDBConnection[] = [];
  private readonly readerWaiters: ((c: DuckDBConnection) => void)[] = [];
  private readerCount = 0;

  constructor(
    readonly instance: DuckDBInstance,
    /** set when the data lives in an attached (compressed) in-memory catalog */
    readonly catalog: string | undefined,
    private readonly maxReaders: number,
  ) {}

  /** reads the stored resources and span attribute keys (open) */
  async load(con: DuckDBConnection): Promise<void> {
    const res = (await con.runAndReadAll('SELECT id, attributes FROM resources ORDER BY id')).getRows();
    for (const [id, json] of res) {
      const entry = makeResource(Number(id), String(json));
      this.resById.set(entry.id, entry);
      this.resByKey.set(entry.json, entry);
      if (entry.id >= this.nextResId) this.nextResId = entry.id + 1;
    }
    const rows = (await con.runAndReadAll('SELECT DISTINCT key FROM span_keys')).getRows();
    for (const [k] of rows) {
      if (k === null) this.spanKeysOverflow = true;
      else this.spanKeys.add(String(k));
    }
    if (this.spanKeysOverflow) this.spanKeys.clear();
    const max = (await con.runAndReadAll('SELECT max(id) FROM strings')).getRows()[0]?.[0];
    // half the cache: a full one would start over at the first new string
    const latest = (await con.runAndReadAll(`SELECT id, s FROM strings ORDER BY id DESC LIMIT ${STRINGS_CACHED / 2}`)).getRows();
    this.strings.load(
      latest.map(([id, s]) => [Number(id), String(s)] as const),
      max === null || max === undefined ? 0 : Number(max),
    );
  }

  async query(sql: string, P: Params, js = false): Promise<Row[]> {
    if (this.closed) throw new Error('DuckStore is shut down');
    const run = (async () => {
      const con = await this.acquire();
      try {
        const reader = await con.runAndReadAll(sql, P.values, P.types);
        return js ? (reader.getRowsJS() as Row[]) : reader.getRows();
      } finally {
        this.release(con);
      }
    })();
    this.inflight.add(run);
    try {
      return await run;
    } finally {
      this.inflight.delete(run);
    }
  }

  private async acquire(): Promise<DuckDBConnection> {
    const idle = this.idleReaders.pop();
    if (idle) return idle;
    if (this.readerCount < this.maxReaders) {
      this.readerCount++;
      try {
        return await connectTo(this.instance, this.catalog);
      } catch (e) {
        this.readerCount--;
        throw e;
      }
    }
    return new Promise((resolve) => this.readerWaiters.push(resolve));
  }

  private release(con: DuckDBConnection): void {
    const waiter = this.readerWaiters.shift();
    if (waiter) waiter(con);
    else this.idleReaders.push(con);
  }

  async toSpans(rows: Row[]): Promise<Span[]> {
    const missing = new Set<number>();
    for (const r of rows) {
      const id = Number(r[9]);
      if (!this.resById.has(id)) missing.add(id);
    }
    const extra = new Map<number, ResourceEntry>();
    // coded columns' strings in place of their codes
    const coded = this.codedColumns.size === 0 ? [] : CODED_AT.filter(([, col]) => this.codedColumns.has(col)).map(([at]) => at);
    if (coded.length > 0) {
      const ids = new Set<number>();
      for (const r of rows) {
        for (const at of coded) {
          const v = r[at];
          if (v !== null && v !== undefined) ids.add(Number(v));
        }
      }
      const texts = await this.strings.texts(ids, (sql, P) => this.query(sql, P));
      for (const r of rows) {
        for (const at of coded) {
          const v = r[at];
          // a code the table lacks (never written by this build) reads as an absent value
          if (v !== null && v !== undefined) r[at] = texts.get(Number(v)) ?? (at === 5 ? '' : null);
        }
      }
    }
    if (missing.size > 0) {
      const P = new Params();
      const got = await this.query(
        `SELECT id, attributes FROM resources WHERE id IN (SELECT unnest(${P.add(listValue([...missing]), LIST(UINTEGER))}))`,
        P,
      );
      for (const [id, json] of got) extra.set(Number(id), makeResource(Number(id), String(json)));
    }
    return rows.map((r) => {
      const [start, dur, tid, sid, pid, name, kind, status, msg, resId] = r;
      const res = this.resById.get(Number(resId)) ?? extra.get(Number(resId));
      const span = new Span();
      span.traceId = uuidHex(tid);
      const sw = sid as bigint;
      span.s0 = Number(sw >> 32n) | 0;
      span.s1 = Number(sw & 0xffffffffn) | 0;
      if (pid !== null && pid !== undefined) {
        const pw = pid as bigint;
        span.p0 = Number(pw >> 32n) | 0;
        span.p1 = Number(pw & 0xffffffffn) | 0;
      }
      span.name = String(name);
      span.kind = KIND_BY_CODE[Number(kind)] ?? 'unspecified';
      span.setStartNs(start as bigint);
      span.durationNano = Number(dur);
      span.status = STATUS_BY_CODE[Number(status)] ?? 'unset';
      span.resource = res ? { ...res.attrs } : {};
      setRowAttributes(span, r);
      if (msg !== null && msg !== undefined) span.statusMessage = String(msg);
      return span;
    });
  }
}


// ---- module helpers ---------------------------------------------------------------------

/** Clears and closes appenders that may be broken (after a failed commit): they are discarded either way. */
export function discardAppenders(appenders: readonly (DuckDBAppender | undefined)[]): void {
  for (const a of appenders) {
    try {
      a?.clear();
      a?.closeSync();
    } catch {
      // a broken appender may refuse to close
    }
  }
}

/** A connection whose default catalog is the store's. */
export async function connectTo(instance: DuckDBInstance, catalog: string | undefined): Promise<DuckDBConnection> {
  const con = await instance.connect();
  if (catalog) {
    try {
      await con.run(`USE ${catalog}`);
    } catch (e) {
      con.closeSync();
      throw e;
    }
  }
  return con;
}

export function makeResource(id: number, json: string): ResourceEntry {
  const attrs = JSON.parse(json) as Attributes;
  const svc = attrs['service.name'];
  const ns = attrs['k8s.namespace.name'];
  return { id, json, attrs, service: typeof svc === 'string' ? svc : null, namespace: typeof ns === 'string' ? ns : null };
}


export function uuidHex(v: DuckDBValue | undefined): string {
  if (v instanceof DuckDBUUIDValue) return v.toUint128().toString(16).padStart(32, '0');
  return String(v).replace(/-/g, '');
}

/** Lowercase 32-hex trace id, left-padded like Tempo does for short ids; undefined when not hex. */
export function normalizeTraceId(id: string): string | undefined {
  if (typeof id !== 'string') return undefined;
  const h = id.trim().toLowerCase();
  if (!/^[0-9a-f]{1,32}$/.test(h)) return undefined;
  return h.padStart(32, '0');
}

export function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}
