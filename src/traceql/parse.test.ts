import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MAX_QUERY_LENGTH,
  TraceQLError,
  fieldToString,
  parseGoDuration,
  parseTraceQL,
  referencedFields,
  type Expr,
  type Query,
} from './index.js';

function filter(q: string): Expr {
  return parseTraceQL(q).filter as Expr;
}

function fails(q: string, kind: TraceQLError['kind'], pattern: RegExp, pos?: number): TraceQLError {
  let err: unknown;
  try {
    parseTraceQL(q);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof TraceQLError, `expected TraceQLError for ${JSON.stringify(q)}, got ${String(err)}`);
  assert.equal(err.kind, kind, `${q}: ${err.message}`);
  assert.match(err.message, pattern);
  assert.match(err.message, / at \d+$/, 'message ends with the position');
  if (pos !== undefined) assert.equal(err.pos, pos, `${q}: ${err.message}`);
  return err;
}

describe('parseTraceQL: selectors', () => {
  it('empty selector matches everything', () => {
    assert.deepEqual(filter('{}'), { type: 'const', value: true });
    assert.deepEqual(filter('{ }'), { type: 'const', value: true });
    assert.deepEqual(filter('  {\n}  '), { type: 'const', value: true });
    assert.deepEqual(filter('{ true }'), { type: 'const', value: true });
    assert.deepEqual(filter('{ false }'), { type: 'const', value: false });
    assert.deepEqual(filter('{ !true }'), { type: 'const', value: false });
  });

  it('keeps the source', () => {
    const q: Query = parseTraceQL('{ name = "a" }');
    assert.equal(q.source, '{ name = "a" }');
  });

  it('parses every comparison operator', () => {
    for (const op of ['=', '!=', '>', '>=', '<', '<='] as const) {
      const e = filter(`{ span.x ${op} 5 }`);
      assert.deepEqual(e, {
        type: 'compare',
        field: { type: 'attribute', scope: 'span', name: 'x' },
        op,
        value: { type: 'number', value: 5 },
        pos: 2,
      });
    }
    for (const op of ['=~', '!~'] as const) {
      const e = filter(`{ name ${op} "GET .*" }`);
      assert.equal(e.type, 'compare');
      if (e.type === 'compare') {
        assert.equal(e.op, op);
        assert.deepEqual(e.value, { type: 'string', value: 'GET .*' });
      }
    }
  });

  it('intrinsics, plain and scoped', () => {
    const cases: [string, string][] = [
      ['name', 'name'],
      ['span:name', 'name'],
      ['status', 'status'],
      ['span:status', 'status'],
      ['kind', 'kind'],
      ['span:kind', 'kind'],
      ['duration', 'duration'],
      ['span:duration', 'duration'],
      ['traceDuration', 'traceDuration'],
      ['trace:duration', 'traceDuration'],
      ['statusMessage', 'statusMessage'],
      ['rootName', 'rootName'],
      ['trace:rootName', 'rootName'],
      ['rootServiceName', 'rootServiceName'],
      ['trace:rootService', 'rootServiceName'],
    ];
    for (const [text, name] of cases) {
      const value = name === 'status' ? 'error' : name === 'kind' ? 'server' : /uration/.test(name) ? '1s' : '"x"';
      const e = filter(`{ ${text} = ${value} }`);
      assert.equal(e.type, 'compare', text);
      if (e.type === 'compare') assert.deepEqual(e.field, { type: 'intrinsic', name }, text);
    }
  });

  it('status and kind keywords', () => {
    for (const s of ['ok', 'error', 'unset']) {
      const e = filter(`{ status = ${s} }`);
      assert.ok(e.type === 'compare' && e.value.type === 'status' && e.value.value === s);
    }
    for (const k of ['server', 'client', 'internal', 'producer', 'consumer', 'unspecified']) {
      const e = filter(`{ kind != ${k} }`);
      assert.ok(e.type === 'compare' && e.value.type === 'kind' && e.value.value === k && e.op === '!=');
    }
  });

  it('attribute scopes and names', () => {
    const f = (q: string) => {
      const e = filter(q);
      assert.equal(e.type, 'compare');
      return e.type === 'compare' ? e.field : undefined;
    };
    assert.deepEqual(f('{ span.http.route = "/a" }'), { type: 'attribute', scope: 'span', name: 'http.route' });
    assert.deepEqual(f('{ resource.service.name = "a" }'), { type: 'attribute', scope: 'resource', name: 'service.name' });
    assert.deepEqual(f('{ .service.name = "a" }'), { type: 'attribute', scope: 'any', name: 'service.name' });
    assert.deepEqual(f('{ span."attr with space" = "a" }'), { type: 'attribute', scope: 'span', name: 'attr with space' });
    assert.deepEqual(f('{ span.foo."bar baz" = 1 }'), { type: 'attribute', scope: 'span', name: 'foo.bar baz' });
    assert.deepEqual(f('{ span."a\\"b\\\\c" = 1 }'), { type: 'attribute', scope: 'span', name: 'a"b\\c' });
  });

  it('literals: strings, numbers, booleans, nil, durations', () => {
    const v = (q: string) => {
      const e = filter(q);
      assert.equal(e.type, 'compare', q);
      return e.type === 'compare' ? e.value : undefined;
    };
    assert.deepEqual(v('{ .a = "x y" }'), { type: 'string', value: 'x y' });
    assert.deepEqual(v('{ .a = "q\\"uote\\\\" }'), { type: 'string', value: 'q"uote\\' });
    assert.deepEqual(v('{ .a = `raw\\d+` }'), { type: 'string', value: 'raw\\d+' });
    assert.deepEqual(v('{ .a = "" }'), { type: 'string', value: '' });
    assert.deepEqual(v('{ .a = "é ✓" }'), { type: 'string', value: 'é ✓' });
    assert.deepEqual(v('{ .a = 42 }'), { type: 'number', value: 42 });
    assert.deepEqual(v('{ .a = 1.25 }'), { type: 'number', value: 1.25 });
    assert.deepEqual(v('{ .a = -7 }'), { type: 'number', value: -7 });
    assert.deepEqual(v('{ .a = -0.5 }'), { type: 'number', value: -0.5 });
    assert.deepEqual(v('{ .a = true }'), { type: 'boolean', value: true });
    assert.deepEqual(v('{ .a != false }'), { type: 'boolean', value: false });
    assert.deepEqual(v('{ .a = nil }'), { type: 'nil' });
    assert.deepEqual(v('{ duration > 200ms }'), { type: 'duration', nanos: 200e6 });
    assert.deepEqual(v('{ duration > 1.5s }'), { type: 'duration', nanos: 1.5e9 });
    assert.deepEqual(v('{ duration > 30us }'), { type: 'duration', nanos: 30e3 });
    assert.deepEqual(v('{ duration > 30µs }'), { type: 'duration', nanos: 30e3 });
    assert.deepEqual(v('{ duration > 10ns }'), { type: 'duration', nanos: 10 });
    assert.deepEqual(v('{ duration > 1m }'), { type: 'duration', nanos: 60e9 });
    assert.deepEqual(v('{ duration > 1h }'), { type: 'duration', nanos: 3600e9 });
    assert.deepEqual(v('{ duration > -5ms }'), { type: 'duration', nanos: -5e6 });
    // a bare number compared with a duration is nanoseconds
    assert.deepEqual(v('{ duration > 1000 }'), { type: 'duration', nanos: 1000 });
    // a duration compared with an attribute stays a duration (the store compares nanoseconds)
    assert.deepEqual(v('{ span.elapsed > 2s }'), { type: 'duration', nanos: 2e9 });
  });

  it('&&, ||, ! and parentheses with the usual precedence', () => {
    const c = (name: string) => ({
      type: 'compare',
      field: { type: 'attribute', scope: 'any', name },
      op: '=',
      value: { type: 'number', value: 1 },
    });
    const strip = (e: Expr): unknown => JSON.parse(JSON.stringify(e, (k, v: unknown) => (k === 'pos' ? undefined : v)));
    assert.deepEqual(strip(filter('{ .a = 1 || .b = 1 && .c = 1 }')), {
      type: 'or',
      left: c('a'),
      right: { type: 'and', left: c('b'), right: c('c') },
    });
    assert.deepEqual(strip(filter('{ (.a = 1 || .b = 1) && .c = 1 }')), {
      type: 'and',
      left: { type: 'or', left: c('a'), right: c('b') },
      right: c('c'),
    });
    assert.deepEqual(strip(filter('{ !(.a = 1) }')), { type: 'not', expr: c('a') });
    assert.deepEqual(strip(filter('{ !(.a = 1 && !(.b = 1)) }')), {
      type: 'not',
      expr: { type: 'and', left: c('a'), right: { type: 'not', expr: c('b') } },
    });
    assert.deepEqual(strip(filter('{ ((.a = 1)) }')), c('a'));
    // ! binds tighter than && and || (Tempo's grammar: `{ .a = !.b && .c }` is `{ (.a = (!.b)) && .c }`)
    assert.deepEqual(strip(filter('{ !(.a = 1) && .b = 1 }')), { type: 'and', left: { type: 'not', expr: c('a') }, right: c('b') });
    assert.deepEqual(strip(filter('{ !(.a = 1) || .b = 1 }')), { type: 'or', left: { type: 'not', expr: c('a') }, right: c('b') });
  });

  it('a literal on the left is flipped', () => {
    const e = filter('{ 200ms < duration }');
    assert.ok(e.type === 'compare' && e.op === '>' && e.field.type === 'intrinsic' && e.field.name === 'duration');
    const e2 = filter('{ "api" = resource.service.name }');
    assert.ok(e2.type === 'compare' && e2.op === '=' && e2.field.type === 'attribute');
  });

  it('spanset || and pipes into another selector', () => {
    const e = filter('{ .a = 1 } || { .b = 2 }');
    assert.equal(e.type, 'or');
    const p = filter('{ .a = 1 } | { .b = 2 }');
    assert.equal(p.type, 'and');
    const w = filter('({ .a = 1 }) || ({ .b = 2 } || { .c = 3 })');
    assert.ok(w.type === 'or' && w.right.type === 'or');
  });

  it('event and link fields: scopes, intrinsics, their types, and only in comparisons with a value', () => {
    assert.deepEqual(filter('{ event.exception.type = "E" }'), {
      type: 'compare', field: { type: 'attribute', scope: 'event', name: 'exception.type' }, op: '=', value: { type: 'string', value: 'E' }, pos: 2,
    });
    assert.deepEqual(filter('{ link."a b" != nil }'), { type: 'compare', field: { type: 'attribute', scope: 'link', name: 'a b' }, op: '!=', value: { type: 'nil' }, pos: 2 });
    assert.deepEqual(filter('{ event:name =~ "exc.*" }'), { type: 'compare', field: { type: 'intrinsic', name: 'eventName' }, op: '=~', value: { type: 'string', value: 'exc.*' }, pos: 2 });
    assert.deepEqual(filter('{ event:timeSinceStart > 1ms }'), {
      type: 'compare', field: { type: 'intrinsic', name: 'eventTimeSinceStart' }, op: '>', value: { type: 'duration', nanos: 1e6 }, pos: 2,
    });
    const l = filter('{ link:traceID = "ABC" && link:spanID != "ff" }');
    assert.ok(l.type === 'and' && l.left.type === 'compare' && l.right.type === 'compare');
    if (l.type === 'and' && l.left.type === 'compare' && l.right.type === 'compare') {
      assert.deepEqual(l.left.value, { type: 'string', value: '0'.repeat(29) + 'abc' });
      assert.deepEqual(l.right.value, { type: 'string', value: '00000000000000ff' });
    }
    fails('{ event:name = 1 }', 'invalid', /event:name is a string/, 15);
    fails('{ event:timeSinceStart = "x" }', 'invalid', /must be compared with a duration/, 25);
    fails('{ link:spanID > "ab" }', 'invalid', /can only be compared with = or !=/);
    fails('{ link:traceID = "xyz" }', 'invalid', /up to 32 hex digits/, 17);
    fails('{ event.a + 1 > 2 }', 'unsupported', /event\.a in arithmetic/, 2);
    fails('{ event.a = span.b }', 'unsupported', /event\.a compared with another field/, 2);
    fails('{ } | by(link:traceID)', 'unsupported', /link:traceID outside a span condition/, 9);
    fails('{ } | select(event.a)', 'unsupported', /event\.a outside a span condition/, 13);
    fails('{ } | avg(event:timeSinceStart) > 1s', 'unsupported', /event:timeSinceStart outside a span condition/);
    fails('{ } | rate() by (event:name)', 'unsupported', /event:name outside a span condition/);
  });

  it('ids are normalised to lowercase, padded hex', () => {
    const e = filter('{ trace:id = "ABC" }');
    assert.ok(e.type === 'compare' && e.value.type === 'string');
    if (e.type === 'compare' && e.value.type === 'string') assert.equal(e.value.value, '0'.repeat(29) + 'abc');
    const s = filter('{ span:id = "00000000000000ff" && span:parentID = nil }');
    assert.equal(s.type, 'and');
  });

  it('ignores comments and hints', () => {
    assert.deepEqual(filter('{ } // all spans'), { type: 'const', value: true });
    assert.deepEqual(filter('{ /* x */ }'), { type: 'const', value: true });
    assert.equal(filter('{ .a = 1 } with (most_recent=true)').type, 'compare');
  });
});

describe('parseTraceQL: errors', () => {
  it('syntax errors carry the position', () => {
    fails('', 'syntax', /empty query/, 0);
    fails('   ', 'syntax', /empty query/);
    fails('{', 'syntax', /unexpected end of query/, 1);
    fails('{ .a = ', 'syntax', /unexpected end of query/, 7);
    fails('{ name = "a }', 'syntax', /unterminated string/, 9);
    fails('{ .a = 1 } }', 'syntax', /unexpected "}"/, 11);
    fails('name = "x"', 'syntax', /syntax error/, 0);
    fails('{ .a == 1 }', 'syntax', /syntax error/);
    fails('{ .a = 1 &&& .b = 2 }', 'syntax', /syntax error/);
    fails('{ duration > 1h30m }', 'syntax', /unexpected "30m"/, 15);
    fails('{ .a = 1.5e3 }', 'syntax', /syntax error/);
    fails('{ name = "a\\tb" }', 'syntax', /escapes/);
    fails('{ name = minInt }', 'syntax', /minInt/);
  });

  it('explains an unscoped attribute without a dot', () => {
    fails('{a=1}', 'syntax', /need a scope: span\.x, resource\.x or \.x/, 1);
    fails('{ http.status_code = 200 }', 'syntax', /need a scope/, 2);
  });

  it('pipelines parse into stages', () => {
    const q = parseTraceQL('{ .a = 1 } | by(resource.service.name) | count() > 2 | select(span.x)');
    assert.equal(q.filter, undefined);
    assert.equal(q.spanset.type, 'pipeline');
    if (q.spanset.type === 'pipeline') assert.deepEqual(q.spanset.stage, { type: 'select', fields: [{ type: 'attribute', scope: 'span', name: 'x' }] });
    assert.deepEqual(q.selected?.map((f) => (f.type === 'attribute' ? f.name : f.name)), ['service.name', 'x']);
    // a filter stage after a plain filter is still a plain filter (the fast path)
    assert.ok(parseTraceQL('{ .a = 1 } | { .b = 1 }').filter);
    const m = parseTraceQL('{ } | quantile_over_time(duration, 0.5, 0.9) by (resource.service.name) | topk(2)').metrics;
    assert.deepEqual(m?.quantiles, [0.5, 0.9]);
    assert.deepEqual(m?.top, { fn: 'topk', n: 2 });
    assert.equal(parseTraceQL('{ } | rate()').metrics?.fn, 'rate');
  });

  it('a metrics query may end with a threshold on its data points', () => {
    const cases: [string, string, number][] = [
      ['{ } | rate() by (resource.service.name) > 10', '>', 10],
      ['{ } | rate()>=0.5', '>=', 0.5],
      ['{ } | count_over_time() < 3 ', '<', 3],
      ['{ } | avg_over_time(span.x) <= -1.5e3', '<=', -1500],
      ['{ } | max_over_time(duration) = .25', '=', 0.25],
      ['{ } | quantile_over_time(duration, 0.9) by (name) | bottomk(3) != 0', '!=', 0],
    ];
    for (const [q, op, value] of cases) {
      const p = parseTraceQL(q);
      assert.deepEqual(p.metrics?.threshold, { op, value }, q);
      assert.equal(p.source, q);
    }
    assert.deepEqual(parseTraceQL('{ } | quantile_over_time(duration, 0.9) by (name) | bottomk(3) != 0').metrics?.top, { fn: 'bottomk', n: 3 });
    // a spanset pipeline's scalar filter is not a threshold
    const count = parseTraceQL('{ } | count() > 10');
    assert.equal(count.metrics, undefined);
    assert.equal(count.spanset.type, 'pipeline');
    // the original error stands when what is left is no metrics query
    fails('{ .a = } > 10', 'syntax', /syntax error/);
    fails('{ } | rate() > 10 | topk(2)', 'syntax', /syntax error/);
    fails('{ } | compare({ status = error }) < 1', 'invalid', /compare\(\) has no threshold/, 34);
  });

  it('spanset and structural operators parse with their position', () => {
    for (const op of ['>', '>>', '<', '<<', '~', '&>', '&>>', '&<', '&<<', '&~', '!>', '!>>', '!<', '!<<', '!~']) {
      const q = parseTraceQL(`{ } ${op} { .b = 1 }`);
      assert.deepEqual(q.spanset.type === 'structural' && [q.spanset.op, q.spanset.pos], [op, 4], op);
    }
    assert.equal(parseTraceQL('{ .a = 1 } && { .b = 1 }').spanset.type, 'setop');
    assert.equal(parseTraceQL('{ span:childCount > 1 }').filter?.type, 'compare');
  });

  it('other unsupported features', () => {
    fails('{ span.a =~ span.b }', 'unsupported', /=~ between two fields/, 9);
    fails('{ 1 = 1 }', 'unsupported', /two values/);
    fails('{ span.a < span.b < 3 }', 'unsupported', /chained comparisons/);
    fails('{ span.a }', 'unsupported', /bare field "span\.a"/, 2);
    fails('{ .a = $var }', 'unsupported', /template variable/, 7);
    fails('{ parent.span.a * 2 = 1 }', 'unsupported', /parent scope in arithmetic/, 2);
    fails('{ } | select(parent.span.a)', 'unsupported', /parent scope outside a span condition/, 13);
    fails('{ instrumentation.a = 1 }', 'unsupported', /instrumentation scope/);
    fails('{ instrumentation:name = "x" }', 'unsupported', /intrinsic "instrumentation:name"/);
    fails('{ (.a = 1) = true }', 'unsupported', /comparing a condition/);
  });

  it('arithmetic is regrouped to Tempo\'s precedence; fields compare with fields; parent scope', () => {
    const f = (q: string): unknown => parseTraceQL(q).filter;
    const attr = (name: string) => ({ type: 'field', field: { type: 'attribute', scope: 'span', name } });
    const num = (value: number) => ({ type: 'literal', value: { type: 'number', value } });
    // lezer reads `a * 2 < b - 1` as `((a * 2) < b) - 1`
    assert.deepEqual(f('{ span.a * 2 < span.b - 1 }'), {
      type: 'valueCompare', op: '<', pos: 2,
      left: { type: 'arith', op: '*', left: attr('a'), right: num(2) },
      right: { type: 'arith', op: '-', left: attr('b'), right: num(1) },
    });
    assert.deepEqual(f('{ span.a + span.b * 2 ^ 3 ^ 2 > 0 }'), {
      type: 'valueCompare', op: '>', pos: 2,
      left: { type: 'arith', op: '+', left: attr('a'), right: { type: 'arith', op: '*', left: attr('b'), right: { type: 'arith', op: '^', left: num(2), right: { type: 'arith', op: '^', left: num(3), right: num(2) } } } },
      right: num(0),
    });
    // and `-a < -1` as `-(a < -1)`
    assert.deepEqual(f('{ -span.a < -1 }'), { type: 'valueCompare', op: '<', pos: 3, left: { type: 'arith', op: '-', left: num(0), right: attr('a') }, right: num(-1) });
    assert.deepEqual(f('{ duration * 2 > 1s }'), {
      type: 'valueCompare', op: '>', pos: 2,
      left: { type: 'arith', op: '*', left: { type: 'field', field: { type: 'intrinsic', name: 'duration' } }, right: num(2) },
      right: { type: 'literal', value: { type: 'duration', nanos: 1e9 } },
    });
    assert.deepEqual(f('{ span.a = span.b }'), { type: 'valueCompare', op: '=', pos: 2, left: attr('a'), right: attr('b') });
    assert.deepEqual(f('{ parent.resource.service.name = "x" }'), {
      type: 'compare', op: '=', pos: 2, field: { type: 'attribute', scope: 'resource', name: 'service.name', parent: true }, value: { type: 'string', value: 'x' },
    });
    fails('{ name * 2 > 1 }', 'invalid', /needs numbers or durations, name is not one/, 2);
  });

  it('type errors', () => {
    fails('{ status = 5 }', 'invalid', /status must be compared with one of ok, error, unset/, 11);
    fails('{ status = "error" }', 'invalid', /status must be compared/);
    fails('{ status > error }', 'invalid', /only be compared with = or !=/);
    fails('{ kind = error }', 'invalid', /kind must be compared/);
    fails('{ name = 5 }', 'invalid', /name is a string/);
    fails('{ duration = "1s" }', 'invalid', /duration must be compared with a duration/);
    fails('{ duration =~ "1.*" }', 'invalid', /cannot be matched/);
    fails('{ .a =~ 5 }', 'invalid', /needs a string/);
    fails('{ .a > true }', 'invalid', /only be compared with = or !=/);
    fails('{ .a < nil }', 'invalid', /only be compared with = or !=/);
    fails('{ .a = error }', 'invalid', /status keyword/);
    fails('{ .a = server }', 'invalid', /kind keyword/);
    fails('{ "x" =~ name }', 'invalid', /needs the field on its left/);
    fails('{ trace:id = "xyz" }', 'invalid', /hex/);
    fails('{ span:id > "ab" }', 'invalid', /only be compared with = or !=/);
    fails('{ .a = -"x" }', 'invalid', /cannot negate/);
    fails('{ 5 }', 'invalid', /expected a condition/);
  });

  it('size limits', () => {
    fails(`{ name = "${'x'.repeat(MAX_QUERY_LENGTH)}" }`, 'invalid', /too long/);
    const deep = `{ ${'('.repeat(300)}.a = 1${')'.repeat(300)} }`;
    fails(deep, 'invalid', /nested too deeply/);
    const wide = `{ ${Array.from({ length: 150 }, (_, i) => `.a${i} = ${i}`).join(' && ')} }`;
    assert.equal(filter(wide).type, 'and');
  });

  it('never throws anything but TraceQLError on junk', () => {
    const junk = [
      '}', '{{}}', '{ = }', '{ . }', '{ .. = 1 }', '{ span. = 1 }', '{ "', '`', '{ `a }', '{ .a = "\\', '|', '| count()',
      '{ } |', '{ } ||', '{ } &&', '{ } >', '()', '({)', '{ name = "a" } garbage', '\u0000', '{ \u0000 }', '{ .a = 1 } with (',
      '{ .a = 1 } with (x=y, ', '{ !!!.a = 1 }', '{ -- }', '{ ---1 = .a }', '{ .a = 99999999999999999999999999999 }',
      '{ .a = 1 } | { .b = 1 } > { }', '{ status = error } | count() > 1 | by(name)', 'count() > 1',
    ];
    for (const q of junk) {
      try {
        parseTraceQL(q);
      } catch (e) {
        assert.ok(e instanceof TraceQLError, `${JSON.stringify(q)} threw ${String(e)}`);
        assert.ok(Number.isInteger(e.pos) && e.pos >= 0 && e.pos <= q.length, `${JSON.stringify(q)}: pos ${e.pos}`);
      }
    }
    // not a string at all
    assert.throws(() => parseTraceQL(42 as unknown as string), TraceQLError);
  });
});

describe('parseGoDuration', () => {
  it('parses Go durations to nanoseconds', () => {
    assert.equal(parseGoDuration('200ms'), 200e6);
    assert.equal(parseGoDuration('1.5s'), 1.5e9);
    assert.equal(parseGoDuration('30us'), 30e3);
    assert.equal(parseGoDuration('30µs'), 30e3);
    assert.equal(parseGoDuration('30μs'), 30e3);
    assert.equal(parseGoDuration('10ns'), 10);
    assert.equal(parseGoDuration('1m'), 60e9);
    assert.equal(parseGoDuration('1h'), 3600e9);
    assert.equal(parseGoDuration('2h45m'), 2 * 3600e9 + 45 * 60e9);
    assert.equal(parseGoDuration('1m30.5s'), 90.5e9);
    assert.equal(parseGoDuration('-1.5h'), -1.5 * 3600e9);
    assert.equal(parseGoDuration('+5s'), 5e9);
    assert.equal(parseGoDuration('.5s'), 0.5e9);
    assert.equal(parseGoDuration('0'), 0);
  });

  it('rejects what Go rejects', () => {
    for (const bad of ['', '5', '1d', 's', '.s', '1.5', 'abc', '1s ', ' 1s', '1S', '--1s', '1ms2']) {
      assert.equal(parseGoDuration(bad), undefined, bad);
    }
  });
});

describe('fields helpers', () => {
  it('referencedFields lists each field once, in order', () => {
    const q = parseTraceQL('{ resource.service.name = "a" && (duration > 1s || !(resource.service.name = "b")) && span."x y" = 1 && .z = nil }');
    assert.deepEqual(referencedFields(q).map(fieldToString), ['resource.service.name', 'duration', 'span."x y"', '.z']);
  });

  it('fieldToString round-trips through the parser', () => {
    for (const text of ['name', 'status', 'kind', 'duration', 'traceDuration', 'span.http.route', 'resource.k8s.pod.name', '.a', 'span."a b"', 'span."q\\"x"', 'event.exception.type', 'link."a b"', 'event:name', 'link:traceID']) {
      const value = text === 'status' ? 'ok' : text === 'kind' ? 'client' : /uration/.test(text) ? '1s' : text === 'link:traceID' ? '"ab"' : '"v"';
      const e = parseTraceQL(`{ ${text} = ${value} }`).filter as Expr;
      assert.ok(e.type === 'compare');
      if (e.type === 'compare') {
        const again = parseTraceQL(`{ ${fieldToString(e.field)} = ${value} }`).filter as Expr;
        assert.ok(again.type === 'compare');
        if (again.type === 'compare') assert.deepEqual(again.field, e.field, text);
      }
    }
  });
});
