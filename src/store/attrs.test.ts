import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AttrEncoder, HOT_KEYS, HOT_TYPES, attrsJson } from './attrs.js';

const ODD = [
  '',
  ' ',
  'a"b',
  'c,d',
  'e\nf',
  'g\r\nh',
  'i\\j',
  'k\tl',
  'm\u0000n',
  '\u0001\u001f\u007f',
  'é漢字😀',
  '\u2028\u2029',
  '\ud800lone',
  'lone\udfff',
  '{"nested":"json"}',
  'x'.repeat(100_000),
];

/** what the store must produce: JSON.stringify of the storable values, in key order */
/** attrsJson's text; `cold`: without the values that go to a hot column (what AttrEncoder writes) */
function expected(a: Record<string, unknown>, cold = false): string {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(a)) {
    const v = a[k];
    const h = HOT_KEYS.indexOf(k);
    if (cold && h >= 0 && typeof v === HOT_TYPES[h]) continue;
    if (typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) out[k] = v;
  }
  return JSON.stringify(out);
}

/** the encoder's JSON ('{}' for null: nothing outside the hot columns) */
function encode(enc: AttrEncoder, a: unknown): { json: string; keys: string[] } {
  const keys: string[] = [];
  const json = enc.encode(a, (k) => keys.push(k)) ?? '{}';
  return { json, keys };
}

describe('AttrEncoder', () => {
  it('gives the text JSON.stringify gives, whatever the strings', () => {
    const enc = new AttrEncoder();
    for (const v of ODD) {
      for (const a of [{ [v]: v }, { 'url.path': v, n: 1, [v]: true }, { a: 1, b: v, c: false }]) {
        const { json } = encode(enc, a);
        assert.equal(json, expected(a, true), JSON.stringify(v).slice(0, 40));
      }
    }
  });

  it('numbers, booleans and key order as JSON.stringify has them', () => {
    const enc = new AttrEncoder();
    const a = { z: 1, '10': 'ten', '2': 'two', neg0: -0, big: 2 ** 53 + 2, tiny: 5e-324, huge: 1e21, frac: 0.1 + 0.2, t: true, f: false };
    assert.equal(encode(enc, a).json, JSON.stringify(a));
    assert.deepEqual(Object.keys(JSON.parse(encode(enc, a).json) as object), Object.keys(a));
  });

  it('leaves out values that are not string / finite number / boolean', () => {
    const enc = new AttrEncoder();
    const cases: Record<string, unknown>[] = [
      { ok: 'yes', nan: NaN, inf: Infinity, obj: { a: 1 }, nul: null, undef: undefined, fn: () => 1, arr: [1], big: 1n },
      { nan: NaN },
      { a: 'x', b: Symbol('s') },
    ];
    for (const a of cases) {
      assert.equal(encode(enc, a).json, expected(a, true));
      assert.equal(attrsJson(a), expected(a));
    }
  });

  it('maps that are not plain objects', () => {
    const enc = new AttrEncoder();
    const noProto = Object.assign(Object.create(null) as Record<string, unknown>, { a: 'x', 'http.route': '/r' });
    assert.equal(encode(enc, noProto).json, '{"a":"x"}', 'http.route goes to its column');
    class Attrs {
      own = 'x';
    }
    (Attrs.prototype as unknown as Record<string, unknown>)['inherited'] = 'no';
    assert.equal(encode(enc, new Attrs()).json, '{"own":"x"}');
    for (const v of [null, undefined, 'str', 5, [1, 2], new Map([['a', 1]])]) assert.equal(encode(enc, v).json, '{}');
  });

  it('a getter that throws makes encode throw', () => {
    const enc = new AttrEncoder();
    const a = {
      get boom(): string {
        throw new Error('boom');
      },
    };
    assert.throws(() => enc.encode(a, () => undefined), /boom/);
  });

  it('picks up the hot attributes of their column\'s type; the rest stays in the JSON', () => {
    const enc = new AttrEncoder();
    const at = (k: string): unknown => enc.hot[HOT_KEYS.indexOf(k)];
    enc.encode({ 'http.request.method': 'GET', 'http.response.status_code': 200, 'http.route': '/r/{id}', 'url.path': '/r/1', x: 1 }, () => undefined);
    assert.equal(at('http.request.method'), 'GET');
    assert.equal(at('http.response.status_code'), 200);
    assert.equal(at('http.route'), '/r/{id}');
    assert.equal(at('url.path'), '/r/1');
    assert.equal(enc.encode({ 'http.request.method': 'GET', 'url.path': '/r/1' }, () => undefined), null, 'no JSON when all are hot');
    assert.equal(enc.encode({ 'http.route': 5, other: 'x' }, () => undefined), '{"http.route":5,"other":"x"}');
    assert.equal(at('http.route'), undefined, 'a numeric route is not a column value');
    assert.equal(at('http.request.method'), undefined, 'reset between maps');
    // the general path too
    assert.equal(enc.encode({ 'url.path': '/p', bad: NaN }, () => undefined), null);
    assert.equal(at('url.path'), '/p');
  });

  it('reports each key the first time it meets it at a place in a key sequence', () => {
    const enc = new AttrEncoder();
    assert.deepEqual(encode(enc, { a: 1, b: 2 }).keys, ['a', 'b']);
    assert.deepEqual(encode(enc, { a: 3, b: 4 }).keys, []);
    assert.deepEqual(encode(enc, { a: 3, c: 4 }).keys, ['c']);
    assert.deepEqual(encode(enc, { b: 1 }).keys, ['b'], 'b first is a new place');
    // the general path reports every key
    assert.deepEqual([...new Set(encode(enc, { a: 1, x: NaN }).keys)].sort(), ['a', 'x']);
  });

  it('many distinct key sequences: still exact once the tree stops growing', () => {
    const enc = new AttrEncoder();
    const seen = new Set<string>();
    for (let i = 0; i < 30_000; i++) {
      const a = { [`k${i}`]: i, common: 'v' };
      const { json, keys } = encode(enc, a);
      assert.equal(json, JSON.stringify(a));
      for (const k of keys) seen.add(k);
      assert.ok(seen.has(`k${i}`), `k${i} reported`);
    }
  });
});
