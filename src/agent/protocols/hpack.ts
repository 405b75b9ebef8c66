// HPACK (RFC 7541) header blocks of one direction of an HTTP/2 connection, decoded with the
// primitives of the `hpack.js` package (integer, string and Huffman decoding, the static and
// dynamic tables); this module drives them block by block and owns what the state may claim.
//
// Soundness. A block is decoded only where every reference it makes is known:
// - exact: the table has seen every block since the connection started;
// - partial: after a reset (a connection joined mid-stream, a block that could not be read or
//   decoded), the table holds only the entries inserted since. HPACK inserts at the front and
//   evicts from the back, so the entries inserted since the reset are exactly the newest ones of
//   the encoder's table, at the same indexes, as long as our size limit is not below the real
//   one: partial tables start at the largest size we allow (an explicit size update makes it
//   exact again). A reference past what we hold is unknown: the block is reported unknown (never
//   guessed) and the table is reset again, since the rest of that block may have inserted
//   entries we did not see.
// Bounded memory: a table never grows past MAX_TABLE bytes (as HPACK counts them); a size
// update above the allowed size is an error (reset, counted).
//
// Privacy: values of credential headers are never held, not even in the table: an entry keeps
// its size (HPACK's accounting needs it) with an empty value.
import hpack, { type Table } from 'hpack.js';

/** the largest dynamic table we hold per direction (bytes as HPACK counts them) */
export const MAX_TABLE = 65536;
/** SETTINGS_HEADER_TABLE_SIZE's initial value */
const DEFAULT_TABLE = 4096;

const SECRET = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);

export type HeaderList = [string, string][];

export class HpackBlocks {
  #table: Table;
  /** the table is only what was inserted since a reset (see above) */
  partial: boolean;
  /** the receiver's SETTINGS_HEADER_TABLE_SIZE: the most a size update may set */
  #allowed = DEFAULT_TABLE;
  /** resets after a block that failed */
  resets = 0;

  constructor(partial: boolean) {
    this.partial = partial;
    this.#table = this.#fresh();
  }

  #fresh(): Table {
    const t = hpack.table.create({ maxSize: this.partial ? MAX_TABLE : Math.min(MAX_TABLE, Math.max(DEFAULT_TABLE, this.#allowed)) });
    if (!this.partial) t.maxSize = DEFAULT_TABLE;
    return t;
  }

  /** the receiver of this direction sent SETTINGS_HEADER_TABLE_SIZE */
  setAllowed(size: number): void {
    this.#allowed = size;
    this.#table.protocolMaxSize = this.partial ? MAX_TABLE : Math.min(MAX_TABLE, Math.max(DEFAULT_TABLE, size));
  }

  /** the state is unknown from here (a block was lost): only entries inserted later count */
  reset(): void {
    this.resets++;
    this.partial = true;
    this.#table = this.#fresh();
  }

  /** one whole header block; undefined when it cannot be decoded soundly (the table is reset) */
  decode(block: Buffer): HeaderList | undefined {
    const d = hpack.decoder.create();
    d.push(block);
    const out: HeaderList = [];
    const t = this.#table;
    try {
      while (!d.isEmpty()) {
        if (d.decodeBit()) {
          const e = t.lookup(d.decodeInt());
          out.push([e.name, e.value]);
          continue;
        }
        const incremental = d.decodeBit();
        if (!incremental && d.decodeBit()) {
          // dynamic table size update
          const size = d.decodeInt();
          if (size > MAX_TABLE) throw new Error('table size above the limit');
          if (this.partial) {
            t.protocolMaxSize = MAX_TABLE;
            t.updateSize(size);
            // the encoder's size is known from now on; what we hold stays the newest entries
          } else t.updateSize(size);
          continue;
        }
        if (!incremental) d.decodeBit(); // never-indexed bit
        const index = d.decodeInt();
        let name: string;
        let nameSize: number;
        if (index === 0) {
          const raw = d.decodeStr();
          nameSize = raw.length;
          name = hpack.utils.stringify(raw);
        } else {
          const e = t.lookup(index);
          name = e.name;
          nameSize = e.nameSize;
        }
        const rawValue = d.decodeStr();
        const secret = SECRET.has(name);
        const value = secret ? '' : hpack.utils.stringify(rawValue);
        if (incremental) t.add(name, value, nameSize, rawValue.length);
        if (!secret) out.push([name, value]);
      }
    } catch {
      this.reset();
      return undefined;
    }
    return out;
  }
}
