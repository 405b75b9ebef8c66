// Column buffers that fill DuckDB data chunks with few native calls.
//
// @duckdb/node-api's typed vectors are general: a VARCHAR vector keeps every value in a
// JS array and hands each one to DuckDB with its own native call when flushed, validity
// is a BigUint64Array updated with BigInt arithmetic, and UUID / UBIGINT values arrive as
// BigInts the caller has to make first. The store writes ~35 columns per span, so that
// generality was most of what storing a span cost in JS. These buffers are written
// directly (numbers into typed arrays, ids as their 32-bit words, strings of at
// most 12 ASCII characters laid out inline the way DuckDB stores them) and copied into
// the chunk's vectors with one call per column; only longer strings need a native call
// each. They use @duckdb/node-bindings, the C API underneath node-api, which node-api
// itself uses for the same copies.
//
// DuckDB layouts relied on (C API, little-endian): BIGINT / UBIGINT 8 bytes; UUID a
// hugeint (lower u64, then upper i64) whose top bit is flipped; VARCHAR a 16-byte
// duckdb_string_t, inline when at most 12 bytes (u32 length + the bytes, zero padded);
// validity one bit per row, 1 = valid. The round-trip tests of the store read every
// column back through DuckDB.

import { createRequire } from 'node:module';
import { DuckDBDataChunk, DuckDBTypeId, type DuckDBType } from '@duckdb/node-api';
import { wordAt } from '../model/index.js';

// the very bindings module node-api runs on (resolved from node-api's own location), so the
// chunk handles node-api makes always go back to the library that made them, even if npm
// ever installed a second copy of the bindings
const require = createRequire(import.meta.url);
const bindings = createRequire(require.resolve('@duckdb/node-api'))('@duckdb/node-bindings') as typeof import('@duckdb/node-bindings');

/** rows per chunk (DuckDB's standard vector size) */
export const CHUNK_ROWS = 2048;

const TWO32 = 2 ** 32;
/** long values of a VarcharColumn remembered for repeats without a map lookup */
const RECENT = 4;

type Vector = ReturnType<typeof bindings.data_chunk_get_vector>;

/**
 * One column of a chunk being filled. Each row is written once per chunk (set or setNull),
 * rows 0..n-1 in any order, then copyTo() hands them over and empties the buffer.
 */
abstract class Column {
  /** the DuckDB type the buffer's layout is for */
  abstract readonly typeId: DuckDBTypeId;
  /** one bit per row, 1 = valid; only copied when some row is null */
  protected readonly validity = new Uint8Array(CHUNK_ROWS / 8).fill(0xff);
  protected nulls = false;

  setNull(i: number): void {
    (this.validity[i >> 3] as number) &= ~(1 << (i & 7));
    this.nulls = true;
    this.clear(i);
  }

  /** copies rows [0, n) into v, then makes the buffer ready for the next chunk */
  copyTo(v: Vector, n: number): void {
    this.copyData(v, n);
    if (this.nulls) {
      bindings.vector_ensure_validity_writable(v);
      bindings.copy_data_to_vector_validity(v, 0, this.validity.buffer, 0, Math.ceil(n / 8));
    }
    this.reset();
  }

  /** forgets every row written (after a copy, or when a chunk is abandoned) */
  reset(): void {
    if (this.nulls) {
      this.validity.fill(0xff);
      this.nulls = false;
    }
  }

  protected abstract copyData(v: Vector, n: number): void;
  /** a null row's data (left as zeros, so stale values never reach DuckDB) */
  protected abstract clear(i: number): void;
}

/** fixed-width values in one ArrayBuffer */
abstract class FixedColumn extends Column {
  protected readonly buf: ArrayBuffer;
  constructor(protected readonly width: number) {
    super();
    this.buf = new ArrayBuffer(CHUNK_ROWS * width);
  }
  protected copyData(v: Vector, n: number): void {
    bindings.copy_data_to_vector(v, 0, this.buf, 0, n * this.width);
  }
}

const NUMBER_ARRAYS = {
  [DuckDBTypeId.UTINYINT]: Uint8Array,
  [DuckDBTypeId.UINTEGER]: Uint32Array,
  [DuckDBTypeId.DOUBLE]: Float64Array,
} as const;

/** UTINYINT, UINTEGER or DOUBLE from a number */
export class NumberColumn extends FixedColumn {
  private readonly a: Uint8Array | Uint32Array | Float64Array;
  constructor(readonly typeId: keyof typeof NUMBER_ARRAYS) {
    const A = NUMBER_ARRAYS[typeId];
    super(A.BYTES_PER_ELEMENT);
    this.a = new A(this.buf);
  }
  set(i: number, v: number | null): void {
    if (v === null) return this.setNull(i);
    this.a[i] = v;
  }
  protected clear(i: number): void {
    this.a[i] = 0;
  }
}

/**
 * ENUM of at most 256 values (stored as UTINYINT codes): a value's code is its position in
 * the type's list, which `codes` maps from the value (built from the table's own type, so the
 * codes are the table's whatever order a build lists the values in).
 */
export class EnumColumn extends FixedColumn {
  readonly typeId = DuckDBTypeId.ENUM;
  private readonly a = new Uint8Array(this.buf);
  readonly codes: ReadonlyMap<string, number>;
  constructor(values: readonly string[]) {
    if (values.length > 256) throw new RangeError(`an ENUM column buffer holds at most 256 values, not ${values.length}`);
    super(1);
    this.codes = new Map(values.map((v, i) => [v, i]));
  }
  /** code: from `codes` */
  set(i: number, code: number): void {
    this.a[i] = code;
  }
  protected clear(i: number): void {
    this.a[i] = 0;
  }
}

/** BIGINT from a bigint, or from a non-negative integer number */
export class I64Column extends FixedColumn {
  readonly typeId = DuckDBTypeId.BIGINT;
  private readonly big = new BigInt64Array(this.buf);
  private readonly u32 = new Uint32Array(this.buf);
  constructor() {
    super(8);
  }
  setBig(i: number, v: bigint): void {
    this.big[i] = v;
  }
  /** v: an integer in [0, 2^63); a safe one without making a bigint */
  setCount(i: number, v: number): void {
    if (v > Number.MAX_SAFE_INTEGER) {
      this.big[i] = BigInt(v);
      return;
    }
    const hi = Math.floor(v / TWO32);
    this.u32[2 * i] = v - hi * TWO32;
    this.u32[2 * i + 1] = hi;
  }
  /** v given as its high and low 32-bit words (unsigned) */
  setWords(i: number, hi: number, lo: number): void {
    this.u32[2 * i] = lo;
    this.u32[2 * i + 1] = hi;
  }
  protected clear(i: number): void {
    this.big[i] = 0n;
  }
}

/** UBIGINT: a span id, as its two 32-bit words (src/model) or 16 hex digits */
export class U64HexColumn extends FixedColumn {
  readonly typeId = DuckDBTypeId.UBIGINT;
  private readonly u32 = new Uint32Array(this.buf);
  constructor() {
    super(8);
  }
  set(i: number, hex: string | null): void {
    if (hex === null) return this.setNull(i);
    this.setWords(i, wordAt(hex, 0), wordAt(hex, 8));
  }
  /** from the id's two 32-bit words, most significant first (signed or unsigned) */
  setWords(i: number, w0: number, w1: number): void {
    this.u32[2 * i] = w1;
    this.u32[2 * i + 1] = w0;
  }
  protected clear(i: number): void {
    this.u32[2 * i] = 0;
    this.u32[2 * i + 1] = 0;
  }
}

/** UUID: a trace id, as its four 32-bit words (src/model) or 32 hex digits */
export class UuidHexColumn extends FixedColumn {
  readonly typeId = DuckDBTypeId.UUID;
  private readonly u32 = new Uint32Array(this.buf);
  constructor() {
    super(16);
  }
  set(i: number, hex: string): void {
    this.setWords(i, wordAt(hex, 0), wordAt(hex, 8), wordAt(hex, 16), wordAt(hex, 24));
  }
  /** from the id's four 32-bit words, most significant first (signed or unsigned) */
  setWords(i: number, w0: number, w1: number, w2: number, w3: number): void {
    const o = 4 * i;
    this.u32[o] = w3;
    this.u32[o + 1] = w2;
    this.u32[o + 2] = w1;
    // DuckDB flips the top bit so that UUIDs order like their text
    this.u32[o + 3] = w0 ^ 0x80000000;
  }
  protected clear(i: number): void {
    this.u32.fill(0, 4 * i, 4 * i + 4);
  }
}

/** VARCHAR: short ASCII strings inline in the buffer, longer ones assigned one by one */
export class VarcharColumn extends Column {
  readonly typeId = DuckDBTypeId.VARCHAR;
  private readonly buf = new ArrayBuffer(CHUNK_ROWS * 16);
  private readonly u8 = new Uint8Array(this.buf);
  private readonly u32 = new Uint32Array(this.buf);
  /** long values handed to DuckDB in copyData: their rows and values */
  private longRows: number[] = [];
  private longValues: string[] = [];
  /** rows repeating a recent long row (dupFrom, one of longRows): copied from it in copyData */
  private dupRows: number[] = [];
  private dupFrom: number[] = [];
  /** the last RECENT distinct long values set, and their rows (in longRows) */
  private readonly recent: (string | undefined)[] = new Array<string | undefined>(RECENT).fill(undefined);
  private readonly recentRow = new Int32Array(RECENT);
  private nextRecent = 0;
  /** copyData's scratch: the first row of each long value, and per long row the row it repeats (-1: none) */
  private readonly firstRow = new Map<string, number>();
  private readonly copyFrom = new Int32Array(CHUNK_ROWS);

  set(i: number, s: string | null): void {
    if (s === null) return this.setNull(i);
    const len = s.length;
    if (len <= 12) {
      const u8 = this.u8;
      const u32 = this.u32;
      const w = 4 * i;
      // the padding: zero words rather than bytes (a row may be rewritten after a reset)
      u32[w + 1] = 0;
      u32[w + 2] = 0;
      u32[w + 3] = 0;
      const o = 16 * i + 4;
      let k = 0;
      for (; k < len; k++) {
        const c = s.charCodeAt(k);
        if (c > 0x7f) break;
        u8[o + k] = c;
      }
      if (k === len) {
        u32[w] = len;
        return;
      }
    }
    // a zero-length placeholder that the assignment or copy in copyData overwrites
    this.clear(i);
    // the value of a recent long row again (one connection's url.full, user agent, peer):
    // its row is copied, without the map lookup (which hashes every fresh string) in copyData
    const recent = this.recent;
    for (let k = 0; k < RECENT; k++) {
      if (recent[k] === s) {
        this.dupRows.push(i);
        this.dupFrom.push(this.recentRow[k] as number);
        return;
      }
    }
    const slot = this.nextRecent;
    recent[slot] = s;
    this.recentRow[slot] = i;
    this.nextRecent = slot === RECENT - 1 ? 0 : slot + 1;
    this.longRows.push(i);
    this.longValues.push(s);
  }

  protected clear(i: number): void {
    const u32 = this.u32;
    const w = 4 * i;
    u32[w] = 0;
    u32[w + 1] = 0;
    u32[w + 2] = 0;
    u32[w + 3] = 0;
  }

  /**
   * Each distinct long value is handed to DuckDB once per chunk (a native call that converts
   * it to UTF-8 and copies it into the vector's string heap); rows repeating it get a copy of
   * that row's 16-byte duckdb_string_t, which points into the same vector's heap. Span names,
   * url.full and user agents repeat within a chunk (one connection, one endpoint): in the
   * recorded wrk -> nginx -> Node stream most long values are repeats.
   */
  protected copyData(v: Vector, n: number): void {
    bindings.copy_data_to_vector(v, 0, this.buf, 0, n * 16);
    const rows = this.longRows;
    const values = this.longValues;
    if (rows.length === 0) return;
    const first = this.firstRow;
    const from = this.copyFrom;
    let dups = 0;
    for (let k = 0; k < rows.length; k++) {
      const s = values[k] as string;
      const r = rows[k] as number;
      const f = first.get(s);
      if (f === undefined) {
        first.set(s, r);
        bindings.vector_assign_string_element(v, r, s);
        from[k] = -1;
      } else {
        from[k] = f;
        dups++;
      }
    }
    first.clear();
    const dupRows = this.dupRows;
    if (dups === 0 && dupRows.length === 0) return;
    // the vector's rows as DuckDB holds them now (a copy), the repeats filled in, written back:
    // first the long rows that repeat an earlier one, then the rows that repeat a long row
    const d = bindings.vector_get_data(v, n * 16);
    if (dups > 0) {
      for (let k = 0; k < rows.length; k++) {
        const f = from[k] as number;
        if (f >= 0) d.copyWithin(16 * (rows[k] as number), 16 * f, 16 * f + 16);
      }
    }
    const dupFrom = this.dupFrom;
    for (let k = 0; k < dupRows.length; k++) {
      const f = dupFrom[k] as number;
      d.copyWithin(16 * (dupRows[k] as number), 16 * f, 16 * f + 16);
    }
    bindings.copy_data_to_vector(v, 0, d.buffer as ArrayBuffer, d.byteOffset, n * 16);
  }

  override reset(): void {
    super.reset();
    if (this.longRows.length) {
      this.longRows = [];
      this.longValues = [];
      // recent rows are rows of this chunk only
      this.recent.fill(undefined);
    }
    if (this.dupRows.length) {
      this.dupRows = [];
      this.dupFrom = [];
    }
  }
}

/**
 * Throws unless `columns` are buffers for exactly `types` (a table's columns, in order): the
 * copies are raw memory copies, so a layout that does not match must never reach them.
 */
export function checkColumns(types: readonly DuckDBType[], columns: readonly Column[]): void {
  const got = types.map((t) => t.typeId);
  const want = columns.map((c) => c.typeId);
  if (got.length !== want.length || got.some((t, i) => t !== want[i])) {
    throw new Error(`column buffers (${want.map((t) => DuckDBTypeId[t]).join(', ')}) do not match the table (${got.map((t) => DuckDBTypeId[t]).join(', ')})`);
  }
}

/**
 * DuckDB's handles of a table's column types, made once per list of types: DuckDBDataChunk.create
 * makes them anew for every chunk (for an ENUM, its whole dictionary), ~2% of the agent's JS
 * thread with a file store. A chunk copies the types it is made with, so the handles are shared.
 */
const LOGICAL_TYPES = new WeakMap<readonly DuckDBType[], ReturnType<DuckDBType['toLogicalType']>['logical_type'][]>();

/**
 * Hands filled column buffers (checked with checkColumns) to a new DuckDB data chunk of n
 * rows. The buffers are empty afterwards, also when this throws (the rows are then lost).
 */
export function toDataChunk(types: readonly DuckDBType[], columns: readonly Column[], n: number): DuckDBDataChunk {
  if (n < 0 || n > CHUNK_ROWS) throw new RangeError(`a chunk holds 0..${CHUNK_ROWS} rows, not ${n}`);
  try {
    let logical = LOGICAL_TYPES.get(types);
    if (logical === undefined) LOGICAL_TYPES.set(types, (logical = types.map((t) => t.toLogicalType().logical_type)));
    const chunk = new DuckDBDataChunk(bindings.create_data_chunk(logical));
    chunk.rowCount = n;
    for (let c = 0; c < columns.length; c++) (columns[c] as Column).copyTo(bindings.data_chunk_get_vector(chunk.chunk, c), n);
    return chunk;
  } finally {
    for (const c of columns) c.reset();
  }
}

export type { Column };
