import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTraceQL } from '../traceql/index.js';
import { Params, compileFilter, jsonNeedle, jsonPointer, regexLiteralPrefix } from './compile.js';

describe('compile helpers', () => {
  it('regexLiteralPrefix is conservative', () => {
    const cases: [string, string][] = [
      ['/api/v1/r42/.*', '/api/v1/r42/'],
      ['/users/[0-9]+', '/users/'],
      ['abc', 'abc'],
      ['abc*', 'ab'],
      ['abc?d', 'ab'],
      ['abc{0,2}', 'ab'],
      ['abc+', 'abc'],
      ['a\\.b\\.c.*', 'a.b.c'],
      ['a\\.*', 'a'],
      ['ab\\dc', 'ab'],
      ['(?i)abc', ''],
      ['^/api', ''],
      ['.*foo', ''],
      ['foo|bar', ''],
      ['/api(a|b)', ''],
      ['[ab]cd', ''],
      ['GET /x', 'GET /x'],
      ['say "hi"', 'say '],
      ['back\\\\slash', 'back'],
      ['é', ''],
    ];
    for (const [re, want] of cases) assert.equal(regexLiteralPrefix(re), want, re);
  });

  it('jsonNeedle: the encoded value or a quoted prefix', () => {
    assert.equal(jsonNeedle('=', 'GET'), '"GET"');
    assert.equal(jsonNeedle('=', 'x"y\\z'), '"x\\"y\\\\z"');
    assert.equal(jsonNeedle('=~', '/api/.*'), '"/api/');
    assert.equal(jsonNeedle('=~', 'ab.*'), undefined); // too short to help
    assert.equal(jsonNeedle('!=', 'GET'), undefined);
    assert.equal(jsonNeedle('!~', '/api/.*'), undefined);
    assert.equal(jsonNeedle('>', 'a'), undefined);
  });

  it('jsonPointer escapes ~ and /', () => {
    assert.equal(jsonPointer('a.b'), '/a.b');
    assert.equal(jsonPointer('a/b~c'), '/a~1b~0c');
    assert.equal(jsonPointer(''), '/');
  });

  it('values and names only ever appear as parameters', () => {
    const hostile = `x'); DROP TABLE spans; --`;
    const q = parseTraceQL(`{ span."${hostile}" = "${hostile}" && name =~ "${hostile}" && resource.k = 1 && .u != nil }`);
    const P = new Params();
    const sql = compileFilter(q.filter!, { params: P });
    assert.ok(!sql.includes('DROP'), sql);
    assert.ok(!sql.includes(hostile));
    assert.ok(P.values.includes(hostile));
    assert.ok(P.values.includes(`/${hostile}`));
    // every placeholder is used and numbered in order
    const used = new Set([...sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
    assert.equal(used.size, P.values.length);
  });

  it('a span key no span has needs no attribute read', () => {
    const P = new Params();
    const sql = compileFilter(parseTraceQL('{ .process.pid = 7 && span.nope = "x" }').filter!, {
      params: P,
      spanKeyMayExist: () => false,
    });
    assert.ok(!/json_extract\(attributes/.test(sql), sql);
    assert.match(sql, /FALSE/);
    const used = new Set([...sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
    assert.equal(used.size, P.values.length);
  });
});
