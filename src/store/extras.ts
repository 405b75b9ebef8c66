// Span events and links: stored beside `spans`, in tables of their own, so a span without
// them (every span the agent makes) costs nothing but one field check on append — no column,
// no NULL, no JSON — and the `spans` rows stay as narrow as before.
//
// - `span_events`: one row per event (its time, name and attributes JSON);
// - `span_links`: one row per link (the linked trace and span ids, attributes JSON);
// - `span_drops`: one row per span that lost events or links (OTLP's dropped_events_count and
//   dropped_links_count: the sender's, plus what the receiver's per-span limits cut).
// Every row repeats its span's start time (`start_ns`) and ids: rows are appended in about
// the same time order as the spans, so DuckDB's zone maps on start_ns skip what a time window
// or a trace's range excludes, retention deletes by the same start time as the spans, and
// TraceQL joins them to their span by (trace_id, span_id) (compile.ts: an EXISTS that DuckDB
// turns into a semi-join over the small table).

import { BIGINT, DuckDBTypeId, VARCHAR, type DuckDBAppender, type DuckDBConnection, type DuckDBDataChunk, type DuckDBType } from '@duckdb/node-api';
import type { Span, SpanEvent, SpanLink } from '../model/index.js';
import { attrsJson } from './attrs.js';
import { CHUNK_ROWS, I64Column, NumberColumn, U64HexColumn, UuidHexColumn, VarcharColumn, checkColumns, toDataChunk, type Column } from './chunks.js';
import { Params } from './compile.js';
import { discardAppenders, uuidHex, type StoreCore } from './core.js';

export const EXTRAS_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS span_events (
    start_ns BIGINT NOT NULL,
    trace_id UUID NOT NULL,
    span_id UBIGINT NOT NULL,
    time_ns BIGINT NOT NULL,
    name VARCHAR NOT NULL,
    attributes VARCHAR
  )`,
  `CREATE TABLE IF NOT EXISTS span_links (
    start_ns BIGINT NOT NULL,
    trace_id UUID NOT NULL,
    span_id UBIGINT NOT NULL,
    link_trace_id UUID NOT NULL,
    link_span_id UBIGINT NOT NULL,
    attributes VARCHAR
  )`,
  `CREATE TABLE IF NOT EXISTS span_drops (
    start_ns BIGINT NOT NULL,
    trace_id UUID NOT NULL,
    span_id UBIGINT NOT NULL,
    events UINTEGER NOT NULL,
    links UINTEGER NOT NULL
  )`,
];

const TABLES = ['span_events', 'span_links', 'span_drops'] as const;
const INT64_MAX = (1n << 63n) - 1n;
const U32_MAX = 0xffffffff;

/** true when the span has something for these tables (the one check a span without pays) */
export function hasExtras(s: Span): boolean {
  return s.events !== undefined || s.links !== undefined || s.droppedEvents !== 0 || s.droppedLinks !== 0;
}

/** rows of one table in column buffers (row `n` is the next), sealed into data chunks every CHUNK_ROWS rows */
abstract class Rows {
  n = 0;
  readonly chunks: DuckDBDataChunk[] = [];
  /** every table's first columns: the span a row belongs to (its start, trace id, span id) */
  readonly start = new I64Column();
  readonly traceId = new UuidHexColumn();
  readonly spanId = new U64HexColumn();
  /** writes span `s`'s key columns into the next row and returns the row */
  key(s: Span): number {
    const i = this.n;
    this.start.setWords(i, s.startHi, s.startLo);
    this.traceId.setWords(i, s.t0, s.t1, s.t2, s.t3);
    this.spanId.setWords(i, s.s0, s.s1);
    return i;
  }
  /** the table's columns, in its order */
  abstract readonly cols: readonly Column[];
  /** row `n` is written: move on */
  done(types: readonly DuckDBType[]): void {
    if (++this.n === CHUNK_ROWS) this.seal(types);
  }
  seal(types: readonly DuckDBType[]): void {
    if (this.n === 0) return;
    try {
      this.chunks.push(toDataChunk(types, this.cols, this.n));
    } finally {
      this.n = 0;
    }
  }
}

class EventRows extends Rows {
  readonly time = new I64Column();
  readonly name = new VarcharColumn();
  readonly attributes = new VarcharColumn();
  override readonly cols: readonly Column[] = [this.start, this.traceId, this.spanId, this.time, this.name, this.attributes];
}

class LinkRows extends Rows {
  readonly linkTraceId = new UuidHexColumn();
  readonly linkSpanId = new U64HexColumn();
  readonly attributes = new VarcharColumn();
  override readonly cols: readonly Column[] = [this.start, this.traceId, this.spanId, this.linkTraceId, this.linkSpanId, this.attributes];
}

class DropRows extends Rows {
  readonly events = new NumberColumn(DuckDBTypeId.UINTEGER);
  readonly links = new NumberColumn(DuckDBTypeId.UINTEGER);
  override readonly cols: readonly Column[] = [this.start, this.traceId, this.spanId, this.events, this.links];
}

/** an event's time as a BIGINT (0 when not a bigint in range: the sender's broken clock, not a reason to lose the event) */
function eventTime(e: SpanEvent): bigint {
  const t = e.timeUnixNano;
  return typeof t === 'bigint' && t >= 0n && t <= INT64_MAX ? t : 0n;
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;

/** The events, links and drop counts of a batch's spans, committed with the batch. */
export class ExtrasBatch {
  private events: EventRows | undefined;
  private links: LinkRows | undefined;
  private drops: DropRows | undefined;
  /** rows added (events + links + drop rows) */
  rows = 0;
  /** approximate bytes, for the checkpoint budget */
  bytes = 0;

  constructor(private readonly types: ExtrasTypes) {}

  /**
   * Adds the span's events, links and drop counts. Everything that can throw (an attribute
   * map that cannot be read) runs before the first row is written, so a refused span leaves
   * no rows here either.
   */
  add(s: Span): void {
    const evs = s.events;
    const lks = s.links;
    const evJson: (string | null)[] = [];
    const evNames: string[] = [];
    if (evs !== undefined) {
      for (const e of evs) {
        evNames.push(typeof e.name === 'string' ? e.name : '');
        const j = attrsJson(e.attributes);
        evJson.push(j === '{}' ? null : j);
      }
    }
    const lkJson: (string | null)[] = [];
    const lkOk: boolean[] = [];
    if (lks !== undefined) {
      for (const l of lks) {
        lkOk.push(typeof l.traceId === 'string' && HEX32.test(l.traceId) && typeof l.spanId === 'string' && HEX16.test(l.spanId));
        const j = attrsJson(l.attributes);
        lkJson.push(j === '{}' ? null : j);
      }
    }
    if (evs !== undefined && evs.length > 0) {
      const r = (this.events ??= new EventRows());
      for (let k = 0; k < evs.length; k++) {
        const i = r.key(s);
        r.time.setBig(i, eventTime(evs[k]!));
        r.name.set(i, evNames[k]!);
        r.attributes.set(i, evJson[k]!);
        this.bytes += 48 + evNames[k]!.length + (evJson[k]?.length ?? 0);
        this.rows++;
        r.done(this.types.events);
      }
    }
    let badLinks = 0;
    if (lks !== undefined && lks.length > 0) {
      const r = (this.links ??= new LinkRows());
      for (let k = 0; k < lks.length; k++) {
        if (!lkOk[k]) {
          badLinks++;
          continue;
        }
        const l = lks[k] as SpanLink;
        const i = r.key(s);
        r.linkTraceId.set(i, l.traceId);
        r.linkSpanId.set(i, l.spanId);
        r.attributes.set(i, lkJson[k]!);
        this.bytes += 64 + (lkJson[k]?.length ?? 0);
        this.rows++;
        r.done(this.types.links);
      }
    }
    const de = s.droppedEvents;
    const dl = s.droppedLinks + badLinks;
    if (de > 0 || dl > 0) {
      const r = (this.drops ??= new DropRows());
      const i = r.key(s);
      r.events.set(i, Math.min(U32_MAX, Math.max(0, Math.floor(de) || 0)));
      r.links.set(i, Math.min(U32_MAX, Math.max(0, Math.floor(dl) || 0)));
      this.rows++;
      r.done(this.types.drops);
    }
  }

  /** the data chunks of each table (the buffers are empty afterwards) */
  seal(): { events: DuckDBDataChunk[]; links: DuckDBDataChunk[]; drops: DuckDBDataChunk[] } {
    this.events?.seal(this.types.events);
    this.links?.seal(this.types.links);
    this.drops?.seal(this.types.drops);
    return { events: this.events?.chunks ?? [], links: this.links?.chunks ?? [], drops: this.drops?.chunks ?? [] };
  }
}

export interface ExtrasTypes {
  events: DuckDBType[];
  links: DuckDBType[];
  drops: DuckDBType[];
}

/** The appenders of the three tables (opened, dropped and closed with the writer's others). */
export class ExtrasAppenders {
  private apps: DuckDBAppender[] | undefined;
  types: ExtrasTypes | undefined;

  get ready(): boolean {
    return this.apps !== undefined;
  }

  async open(con: DuckDBConnection, catalog: string | undefined): Promise<void> {
    const apps: DuckDBAppender[] = [];
    for (const t of TABLES) apps.push(await con.createAppender(t, 'main', catalog ?? null));
    const typesOf = (a: DuckDBAppender): DuckDBType[] => {
      const out: DuckDBType[] = [];
      for (let i = 0; i < a.columnCount; i++) out.push(a.columnType(i));
      return out;
    };
    const types = { events: typesOf(apps[0]!), links: typesOf(apps[1]!), drops: typesOf(apps[2]!) };
    // the column buffers must match the tables (a store file from another build would not)
    checkColumns(types.events, new EventRows().cols);
    checkColumns(types.links, new LinkRows().cols);
    checkColumns(types.drops, new DropRows().cols);
    this.apps = apps;
    this.types = types;
  }

  /** commits a batch's rows: one flush per table that has any */
  write(b: ExtrasBatch): void {
    const apps = this.apps;
    if (!apps) throw new Error('event/link appenders are not open');
    const { events, links, drops } = b.seal();
    [events, links, drops].forEach((chunks, k) => {
      if (chunks.length === 0) return;
      for (const c of chunks) apps[k]!.appendDataChunk(c);
      apps[k]!.flushSync();
    });
  }

  close(): void {
    for (const a of this.apps ?? []) a.closeSync();
    this.apps = undefined;
  }

  drop(): void {
    discardAppenders(this.apps ?? []);
    this.apps = undefined;
  }
}

/** Deletes the rows of spans that started before `ns` (or at it too, with `inclusive`): retention, after the spans. */
export async function pruneExtras(con: DuckDBConnection, ns: bigint, inclusive: boolean): Promise<void> {
  for (const t of TABLES) await con.run(`DELETE FROM ${t} WHERE start_ns ${inclusive ? '<=' : '<'} $1`, [ns], [BIGINT]);
}

/**
 * Reads the events, links and drop counts of one trace's spans (start times in [lo, hi])
 * and sets them on `spans`. Three narrow scans of small tables, skipped by zone maps outside
 * the trace's range; a trace without any costs three empty reads.
 */
export async function attachExtras(core: StoreCore, traceId: string, lo: bigint, hi: bigint, spans: readonly Span[]): Promise<void> {
  if (spans.length === 0) return;
  const bySpan = new Map<string, Span>();
  for (const s of spans) bySpan.set(`${s.s0 >>> 0}:${s.s1 >>> 0}`, s);
  const key = (sid: unknown): string => {
    const v = sid as bigint;
    return `${Number(v >> 32n)}:${Number(v & 0xffffffffn)}`;
  };
  const where = (P: Params): string => `trace_id = CAST(${P.add(traceId, VARCHAR)} AS UUID) AND start_ns >= ${P.add(lo, BIGINT)} AND start_ns <= ${P.add(hi, BIGINT)}`;
  const P1 = new Params();
  const P2 = new Params();
  const P3 = new Params();
  const [evRows, lkRows, dropRows] = await Promise.all([
    core.query(`SELECT span_id, time_ns, name, attributes FROM span_events WHERE ${where(P1)} ORDER BY span_id, time_ns, rowid`, P1),
    core.query(`SELECT span_id, link_trace_id, link_span_id, attributes FROM span_links WHERE ${where(P2)} ORDER BY span_id, rowid`, P2),
    core.query(`SELECT span_id, sum(events), sum(links) FROM span_drops WHERE ${where(P3)} GROUP BY span_id`, P3),
  ]);
  for (const [sid, time, name, attrs] of evRows) {
    const s = bySpan.get(key(sid));
    if (!s) continue;
    (s.events ??= []).push({ timeUnixNano: time as bigint, name: String(name), attributes: attrs === null ? {} : (JSON.parse(String(attrs)) as SpanEvent['attributes']) });
  }
  for (const [sid, ltid, lsid, attrs] of lkRows) {
    const s = bySpan.get(key(sid));
    if (!s) continue;
    (s.links ??= []).push({
      traceId: uuidHex(ltid),
      spanId: (lsid as bigint).toString(16).padStart(16, '0'),
      attributes: attrs === null ? {} : (JSON.parse(String(attrs)) as SpanLink['attributes']),
    });
  }
  for (const [sid, de, dl] of dropRows) {
    const s = bySpan.get(key(sid));
    if (!s) continue;
    s.droppedEvents = Number(de);
    s.droppedLinks = Number(dl);
  }
}
