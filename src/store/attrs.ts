// JSON text of attribute maps as the store keeps them: exactly what JSON.stringify gives
// for the map's string / finite number / boolean values (anything else is left out).
// compile.ts relies on that exact text (jsonNeedle), and the round trip relies on it.
//
// Storing a span needs three things from its attribute map: the values of the hot
// attributes (typed columns, schema.ts), the JSON text of the others (none for the agent's
// HTTP spans: since schema version 2 a hot value is never repeated in the JSON) and whether
// it has keys not seen before (the span_keys table). AttrEncoder gets all three in one pass over the map: the agent
// builds attribute maps from a few fixed sequences of keys, so the encoder remembers
// every sequence it has seen as a path in a tree whose nodes say which hot attribute a
// key is; a walk costs one map lookup per key and a type check per value, and only a
// key new at its place in the tree is reported. When every attribute went to a column
// there is no text to build at all. Measured before version 2 (all attributes as JSON),
// per agent-shaped span (15 attributes, Node 20, 2-core VM):
//   type check + JSON.stringify + hot lookups + key Set lookups (before)  2.9 µs
//   tree walk + JSON.stringify (this)                                      2.6 µs
//   tree nodes holding each key's JSON text (`,"url.path":`), text built
//   by concatenation                                                       1.2 µs to build, but
//   3.0 µs once DuckDB has copied it out: V8 must flatten the concatenation first.

import type { AttrValue, Attributes } from '../model/index.js';
import { HOT_SPAN_ATTRS } from './schema.js';

/** Keys of HOT_SPAN_ATTRS, in the order of AttrEncoder.hot. */
export const HOT_KEYS: readonly string[] = Object.keys(HOT_SPAN_ATTRS);

/** the tree stops growing at this many nodes; maps off the tree take the general path */
const MAX_NODES = 20_000;

interface ShapeNode {
  /** index in HOT_KEYS, or -1 */
  readonly hot: number;
  readonly next: Map<string, ShapeNode>;
}

export function isAttrValue(v: unknown): v is AttrValue {
  return typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
}

/** JSON text of an attribute map, keeping only string / finite number / boolean values. */
export function attrsJson(a: unknown): string {
  if (typeof a !== 'object' || a === null || Array.isArray(a)) return '{}';
  const obj = a as Record<string, unknown>;
  const keys = Object.keys(obj);
  let clean = true;
  for (const k of keys) {
    if (!isAttrValue(obj[k])) {
      clean = false;
      break;
    }
  }
  if (clean) return JSON.stringify(obj);
  const out: Attributes = {};
  for (const k of keys) {
    const v = obj[k];
    if (isAttrValue(v)) out[k] = v;
  }
  return JSON.stringify(out);
}

/** JS type each HOT_KEYS attribute must have to be stored in its column */
export const HOT_TYPES: readonly ('string' | 'number')[] = HOT_KEYS.map((k) => (HOT_SPAN_ATTRS[k] as readonly [string, 'string' | 'number'])[1]);

/** whether `v` goes to the column of hot attribute `h` (else, if storable, to the JSON) */
function inColumn(h: number, v: unknown): boolean {
  return h >= 0 && typeof v === HOT_TYPES[h];
}

/** JSON text of the attributes that do not go to a column; null when there are none */
function coldJson(obj: Record<string, unknown>): string | null {
  let out: Attributes | undefined;
  for (const k of Object.keys(obj)) {
    const v = obj[k];
    if (!isAttrValue(v) || inColumn(HOT_INDEX.get(k) ?? -1, v)) continue;
    (out ??= {})[k] = v;
  }
  return out === undefined ? null : JSON.stringify(out);
}

const HOT_INDEX = new Map(HOT_KEYS.map((k, i) => [k, i]));

export class AttrEncoder {
  /** values of the HOT_KEYS attributes of the map encoded last that go to their columns (undefined = not there) */
  readonly hot: unknown[] = HOT_KEYS.map(() => undefined);
  private readonly root: ShapeNode = { hot: -1, next: new Map() };
  private nodes = 0;

  /**
   * JSON text of the attributes of `a` that are not stored in a hot column (as attrsJson
   * would write them), null when every attribute went to a column (the agent's HTTP spans).
   * `newKey` is called at least once for every key the encoder meets for the first time
   * (and may be called again for a key it has seen).
   */
  encode(a: unknown, newKey: (key: string) => void): string | null {
    const hot = this.hot;
    for (let i = 0; i < hot.length; i++) hot[i] = undefined;
    if (typeof a !== 'object' || a === null) return null;
    const proto: unknown = Object.getPrototypeOf(a);
    // for-in would also list inherited keys; arrays and class instances take the general path
    if (proto !== Object.prototype && proto !== null) return this.general(a, newKey);
    const obj = a as Record<string, unknown>;
    let node = this.root;
    let cold = false;
    for (const k in obj) {
      let next = node.next.get(k);
      if (next === undefined) {
        if (this.nodes >= MAX_NODES) return this.general(a, newKey);
        next = { hot: HOT_INDEX.get(k) ?? -1, next: new Map() };
        node.next.set(k, next);
        this.nodes++;
        newKey(k);
      }
      node = next;
      const v = obj[k];
      if (!isAttrValue(v)) return this.general(a, newKey);
      if (inColumn(node.hot, v)) hot[node.hot] = v;
      else cold = true;
    }
    return cold ? coldJson(obj) : null;
  }

  private general(a: object, newKey: (key: string) => void): string | null {
    const obj = a as Record<string, unknown>;
    const hot = this.hot;
    for (let i = 0; i < hot.length; i++) hot[i] = undefined;
    if (Array.isArray(a)) return null;
    for (const k of Object.keys(obj)) newKey(k);
    for (let i = 0; i < hot.length; i++) {
      const v = obj[HOT_KEYS[i] as string];
      if (isAttrValue(v) && inColumn(i, v)) hot[i] = v;
    }
    return coldJson(obj);
  }
}
