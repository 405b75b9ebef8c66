// TraceQL text → IR, using Grafana's lezer grammar for the syntax and checking the
// meaning here. Every failure is a TraceQLError with a position; nothing else escapes.
//
// Grammar notes (see /work/shared/reference/pipeline-compat.md §2.2): keywords and many
// operators are anonymous tokens, so FieldOp/Static/IntrinsicField are read from the
// source text; unary `!`/`-` and parentheses show up as a FieldExpression with a
// single FieldExpression child; a spanset pair with no operator node between is `~`.

import { parser } from '@grafana/lezer-traceql';
import type { SpanKind, SpanStatus } from '../model/index.js';
import { parseGoDuration } from './duration.js';
import { fieldToString, isEventOrLinkField } from './fields.js';
import { TraceQLError } from './errors.js';
import type {
  AggregateFn,
  ArithOp,
  AttributeScope,
  ComparisonOp,
  Expr,
  FieldRef,
  IntrinsicName,
  Literal,
  MetricsFn,
  MetricsOp,
  ThresholdOp,
  PipelineStage,
  Query,
  ScalarExpr,
  SpansetExpr,
  StructuralOp,
  ValueExpr,
} from './ir.js';

type Node = ReturnType<typeof parser.parse>['topNode'];

/** Longest query accepted, in UTF-16 code units. */
export const MAX_QUERY_LENGTH = 16384;
/** Deepest nesting of parentheses / operators accepted. */
const MAX_DEPTH = 200;

const STATUS_VALUES: readonly SpanStatus[] = ['ok', 'error', 'unset'];
const KIND_VALUES: readonly SpanKind[] = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'];

const INTRINSICS: Readonly<Record<string, IntrinsicName>> = {
  name: 'name',
  'span:name': 'name',
  status: 'status',
  'span:status': 'status',
  statusMessage: 'statusMessage',
  'span:statusMessage': 'statusMessage',
  kind: 'kind',
  'span:kind': 'kind',
  duration: 'duration',
  'span:duration': 'duration',
  traceDuration: 'traceDuration',
  'trace:duration': 'traceDuration',
  rootName: 'rootName',
  'trace:rootName': 'rootName',
  rootServiceName: 'rootServiceName',
  'trace:id': 'traceId',
  'span:id': 'spanId',
  'span:parentID': 'parentSpanId',
  'span:childCount': 'childCount',
  'trace:rootService': 'rootServiceName',
  'event:name': 'eventName',
  'event:timeSinceStart': 'eventTimeSinceStart',
  'link:traceID': 'linkTraceId',
  'link:spanID': 'linkSpanId',
};

/** numeric intrinsics (aggregates and metrics over them) */
const NUMERIC_INTRINSICS: ReadonlySet<IntrinsicName> = new Set(['duration', 'traceDuration', 'childCount']);
const AGGREGATES: ReadonlySet<string> = new Set(['avg', 'min', 'max', 'sum']);
const STRUCTURAL_OPS: ReadonlySet<string> = new Set(['>', '>>', '<', '<<', '~', '&>', '&>>', '&<', '&<<', '&~', '!>', '!>>', '!<', '!<<', '!~']);

/**
 * `span:childCount` is Tempo's but not in lezer-traceql 1.0.0's intrinsic list: the
 * text is parsed with `span.childCount` (same length, so positions hold) and the
 * attribute at a recorded offset is read back as the intrinsic.
 */
const CHILD_COUNT = /span:childCount\b/g;

/** What a spanset-level node parses to before it is known how it is used. */
type Piece =
  | { kind: 'spanset'; spanset: SpansetExpr }
  | { kind: 'stage'; stage: PipelineStage; pos: number }
  | { kind: 'metricsStage'; op: MetricsOp; pos: number }
  | { kind: 'topStage'; top: NonNullable<MetricsOp['top']>; pos: number }
  | { kind: 'metrics'; input: SpansetExpr; op: MetricsOp };

const COMPARISON_OPS: ReadonlySet<string> = new Set(['=', '!=', '>', '>=', '<', '<=', '=~', '!~']);

const FLIPPED: Readonly<Record<ComparisonOp, ComparisonOp | undefined>> = {
  '=': '=',
  '!=': '!=',
  '>': '<',
  '>=': '<=',
  '<': '>',
  '<=': '>=',
  '=~': undefined,
  '!~': undefined,
};

/** What a FieldExpression evaluates to, before it is known how it is used. */
type Operand =
  | { kind: 'expr'; expr: Expr; pos: number }
  | { kind: 'field'; field: FieldRef; pos: number; text: string }
  | { kind: 'static'; lit: Literal; pos: number; text: string }
  /** arithmetic over fields and numbers */
  | { kind: 'value'; value: ValueExpr; pos: number; text: string };

/**
 * Parses a TraceQL query. Supported: one or more `{ ... }` selectors joined by `||`
 * or piped into each other (`{a} | {b}` = both), with `&&`, `||`, `!`, parentheses and
 * comparisons `= != > >= < <= =~ !~` on intrinsics and span/resource/unscoped attributes.
 * @throws TraceQLError for anything else (syntax errors, pipelines, structural operators...).
 */
export function parseTraceQL(q: string): Query {
  if (typeof q !== 'string') throw new TraceQLError('invalid', 'query must be a string', 0);
  if (q.length > MAX_QUERY_LENGTH) {
    throw new TraceQLError('invalid', `query too long (${q.length} characters, at most ${MAX_QUERY_LENGTH})`, MAX_QUERY_LENGTH);
  }
  if (q.trim() === '') throw new TraceQLError('syntax', 'syntax error: empty query', 0);
  try {
    try {
      return new Parser(q).parse();
    } catch (e) {
      const t = e instanceof TraceQLError && e.kind === 'syntax' ? withThreshold(q) : undefined;
      if (t) return t;
      throw e;
    }
  } catch (e) {
    if (e instanceof TraceQLError) throw e;
    // lezer or our walk failed in an unforeseen way (e.g. stack overflow): still typed
    const msg = e instanceof Error ? e.message : String(e);
    throw new TraceQLError('invalid', `could not parse query (${msg})`, 0);
  }
}

/** a comparison with a number at the end of a query: `> 10`, `<= 0.5` */
const THRESHOLD = /(>=|<=|!=|=|>|<)\s*(-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*$/;

/**
 * A metrics query that ends with a threshold (`{ } | rate() by (x) > 10`: keep the data points
 * above 10). Tempo's TraceQL has it; Grafana's grammar (lezer-traceql 1.0.0) does not, so the
 * whole query is a syntax error to it: the comparison is taken off and what is left must be a
 * metrics query. Anything else keeps the original error (undefined here).
 */
function withThreshold(q: string): Query | undefined {
  const m = THRESHOLD.exec(q);
  if (!m) return undefined;
  let head: Query;
  try {
    head = new Parser(q.slice(0, m.index)).parse();
  } catch {
    return undefined;
  }
  const metrics = head.metrics;
  if (!metrics) return undefined;
  if (metrics.fn === 'compare') throw new TraceQLError('invalid', 'compare() has no threshold: it returns counts per attribute value', m.index);
  const value = Number(m[2]);
  if (!Number.isFinite(value)) return undefined;
  return { ...head, source: q, metrics: { ...metrics, threshold: { op: m[1] as ThresholdOp, value } } };
}

/** whether a data point's value meets a metrics query's threshold */
export function meetsThreshold(t: { op: ThresholdOp; value: number } | undefined, v: number): boolean {
  if (!t) return true;
  switch (t.op) {
    case '>':
      return v > t.value;
    case '>=':
      return v >= t.value;
    case '<':
      return v < t.value;
    case '<=':
      return v <= t.value;
    case '=':
      return v === t.value;
    case '!=':
      return v !== t.value;
  }
}

class Parser {
  private readonly q: string;
  private depth = 0;
  /** offsets where `span:childCount` was written */
  private readonly childCountAt = new Set<number>();

  constructor(q: string) {
    this.q = q;
  }

  parse(): Query {
    const text = this.q.replace(CHILD_COUNT, (m, at: number) => {
      this.childCountAt.add(at);
      return 'span.childCount';
    });
    const tree = parser.parse(text);
    this.checkErrors(tree.topNode);
    const top = tree.topNode;
    let result: Piece | undefined;
    for (const c of this.children(top)) {
      if (c.name === 'SpansetPipelineExpression') {
        if (result !== undefined) throw this.unsupported(`unsupported: query part "${this.snip(c)}"`, c.from);
        result = this.piece(c);
      } else if (c.name === 'WithHint') {
        // `with (most_recent=true)` and other hints only tune Tempo's execution
        continue;
      } else {
        throw this.unsupported(`unsupported: ${this.describe(c)}`, c.from);
      }
    }
    if (result === undefined) throw new TraceQLError('syntax', 'syntax error: expected a spanset selector such as { }', 0);
    if (result.kind !== 'spanset' && result.kind !== 'metrics') {
      throw new TraceQLError('invalid', 'a query must start with a spanset selector such as { }', 0);
    }
    const spanset = result.kind === 'spanset' ? result.spanset : result.input;
    const filter = plainFilter(spanset);
    const out: Query = { source: this.q, spanset };
    if (filter) out.filter = filter;
    if (result.kind === 'metrics') out.metrics = result.op;
    const selected = selectedFields(spanset);
    if (selected.length) out.selected = selected;
    return out;
  }

  // ---- syntax errors ------------------------------------------------------------

  private checkErrors(top: Node): void {
    let bad: { from: number; to: number } | undefined;
    top.cursor().iterate((n) => {
      if (bad) return false;
      if (n.type.isError) {
        bad = { from: n.from, to: n.to };
        return false;
      }
      return undefined;
    });
    if (!bad) return;
    const q = this.q;
    // skip whitespace so the position points at the offending token
    let at = bad.from;
    while (at < q.length && /\s/.test(q[at] ?? '')) at++;
    if (at >= q.length) throw new TraceQLError('syntax', 'syntax error: unexpected end of query', q.length);
    const tok = tokenAt(q, at);
    let hint = '';
    const rest = q.slice(at);
    if (/^[A-Za-z_][\w.]*\s*(=~|!~|!=|>=|<=|=|<|>)/.test(rest) && !/^(true|false|nil)\b/.test(rest)) {
      hint = ' (attribute names need a scope: span.x, resource.x or .x)';
    } else if (/^minInt|^maxInt/.test(rest)) {
      hint = ' (minInt/maxInt are not supported)';
    } else if (/^\.\d/.test(rest)) {
      hint = ' (write fractions with a leading 0, e.g. 0.5)';
    } else if (rest.startsWith('"')) {
      const str = /^"(?:[^"\\]|\\.)*"/.exec(rest);
      if (!str) hint = ' (unterminated string)';
      else if (hasBadEscape(str[0])) hint = ' (only \\" and \\\\ escapes are allowed in "…" strings; use `…` for regular expressions)';
    }
    throw new TraceQLError('syntax', `syntax error: unexpected ${JSON.stringify(tok)}${hint}`, at);
  }

  // ---- spansets -----------------------------------------------------------------

  /** A spanset expression, a pipeline stage, or a metrics stage, from any spanset-level node. */
  private piece(node: Node): Piece {
    this.enter(node);
    try {
      switch (node.name) {
        case 'SpansetFilter':
          return { kind: 'spanset', spanset: { type: 'filter', expr: this.filter(node) } };
        case 'SpansetPipelineExpression':
        case 'SpansetPipeline':
        case 'WrappedSpansetPipeline':
        case 'SpansetExpression':
          return this.sequence(node);
        case 'ScalarFilter':
          return { kind: 'stage', stage: this.scalarFilter(node), pos: node.from };
        case 'GroupOperation':
          return { kind: 'stage', stage: { type: 'by', fields: this.fieldList(node) }, pos: node.from };
        case 'SelectOperation':
          return { kind: 'stage', stage: { type: 'select', fields: this.fieldList(node) }, pos: node.from };
        case 'CoalesceOperation':
          return { kind: 'stage', stage: { type: 'coalesce' }, pos: node.from };
        case 'MetricsOperation':
          return { kind: 'metricsStage', op: this.metricsOp(node), pos: node.from };
        case 'MetricsAggregatorFunctions':
          return { kind: 'topStage', top: this.topStage(node), pos: node.from };
        default:
          throw this.unsupported(`unsupported: ${this.describe(node)}`, node.from);
      }
    } finally {
      this.depth--;
    }
  }

  private spansetOf(p: Piece, at: number): SpansetExpr {
    if (p.kind === 'spanset') return p.spanset;
    if (p.kind === 'stage' && p.stage.type === 'filter') return { type: 'filter', expr: p.stage.expr };
    throw new TraceQLError('invalid', p.kind === 'metrics' || p.kind === 'metricsStage'
      ? 'a metrics function must be the last stage of a query (only topk/bottomk may follow it)'
      : 'expected a spanset selector such as { } here (pipeline stages such as count(), by(), select() follow a |)', at);
  }

  /** children like [A], [A, op, B], [A, B] (sibling `~`), [A, |, B, |, C]... */
  private sequence(node: Node): Piece {
    const kids = this.children(node);
    const first = kids[0];
    if (!first) throw new TraceQLError('syntax', 'syntax error: empty expression', node.from);
    let acc = this.piece(first);
    let prev = first;
    let i = 1;
    while (i < kids.length) {
      const k = kids[i];
      if (!k) break;
      let opNode: Node | undefined = k;
      let right: Node | undefined = kids[i + 1];
      let opText: string;
      if (isSpansetNode(k.name)) {
        // two operands with no operator node between them: the sibling operator `~`
        opNode = undefined;
        right = k;
        opText = '~';
      } else {
        opText = this.text(k);
        if (!right) throw new TraceQLError('syntax', `syntax error: missing operand after ${JSON.stringify(opText)}`, k.to);
      }
      const opPos = opNode ? opNode.from : (() => {
        const gap = this.q.slice(prev.to, right.from);
        const tilde = gap.indexOf('~');
        return tilde >= 0 ? prev.to + tilde : right.from;
      })();
      const name = opNode?.name ?? 'Sibling';
      if (name === 'Pipe') {
        acc = this.pipe(acc, this.piece(right), opPos, right.from);
      } else {
        const left = this.spansetOf(acc, node.from);
        const r = this.spansetOf(this.piece(right), right.from);
        switch (name) {
          case 'Or':
          case 'And':
            acc = { kind: 'spanset', spanset: { type: 'setop', op: name === 'And' ? 'and' : 'or', left, right: r } };
            break;
          case 'Gt':
          case 'Lt':
          case 'Desc':
          case 'Anc':
          case 'Sibling':
          case 'ExperimentalOp':
          case 'UnionStructuralOp': {
            if (!STRUCTURAL_OPS.has(opText)) throw this.unsupported(`unsupported: structural operator ${JSON.stringify(opText)}`, opPos);
            acc = { kind: 'spanset', spanset: { type: 'structural', op: opText as StructuralOp, left, right: r, pos: opPos } };
            break;
          }
          default:
            throw this.unsupported(`unsupported: ${this.describe(k)}`, k.from);
        }
      }
      prev = right;
      i += opNode ? 2 : 1;
    }
    return acc;
  }

  /** `left | right` */
  private pipe(left: Piece, right: Piece, pipePos: number, rightPos: number): Piece {
    if (left.kind === 'metrics') {
      if (right.kind === 'topStage') {
        if (left.op.top) throw new TraceQLError('invalid', 'only one topk/bottomk stage is allowed', rightPos);
        return { kind: 'metrics', input: left.input, op: { ...left.op, top: right.top } };
      }
      throw new TraceQLError('invalid', 'only topk(n) or bottomk(n) may follow a metrics function', rightPos);
    }
    const input = this.spansetOf(left, pipePos);
    switch (right.kind) {
      case 'spanset':
        if (right.spanset.type !== 'filter') {
          throw this.unsupported('unsupported: a structural or spanset operator after "|" (wrap the left side in parentheses instead)', rightPos);
        }
        return { kind: 'spanset', spanset: { type: 'pipeline', input, stage: { type: 'filter', expr: right.spanset.expr } } };
      case 'stage':
        return { kind: 'spanset', spanset: { type: 'pipeline', input, stage: right.stage } };
      case 'metricsStage':
        return { kind: 'metrics', input, op: right.op };
      case 'topStage':
        throw new TraceQLError('invalid', `${right.top.fn}() must follow a metrics function such as rate()`, rightPos);
      case 'metrics':
        throw new TraceQLError('invalid', 'a metrics function must be the last stage of a query', rightPos);
    }
  }

  // ---- pipeline stages --------------------------------------------------------------

  private fieldList(node: Node): FieldRef[] {
    const out: FieldRef[] = [];
    const walk = (n: Node): void => {
      for (const c of this.children(n)) {
        if (c.name === 'SelectArgs') walk(c);
        else if (c.name === 'FieldExpression') {
          const o = this.operand(c);
          if (o.kind !== 'field') throw new TraceQLError('invalid', `expected a field such as span.x or duration, got ${JSON.stringify(this.snip(c))}`, c.from);
          this.noParent(o.field, c.from);
          out.push(o.field);
        } else throw this.unsupported(`unsupported: ${this.describe(c)}`, c.from);
      }
    };
    walk(node);
    if (out.length === 0) throw new TraceQLError('invalid', 'expected at least one field', node.from);
    return out;
  }

  private scalarFilter(node: Node): PipelineStage {
    const kids = this.children(node);
    const [l, op, r] = kids;
    if (kids.length !== 3 || !l || !op || !r || op.name !== 'ComparisonOp') {
      throw this.unsupported(`unsupported: ${this.describe(node)}`, node.from);
    }
    const opText = this.text(op);
    if (!COMPARISON_OPS.has(opText) || opText === '=~' || opText === '!~') {
      throw new TraceQLError('invalid', `aggregates are compared with = != > >= < <=, not ${opText}`, op.from);
    }
    return { type: 'scalarFilter', left: this.scalar(l), op: opText as ComparisonOp, right: this.scalar(r) };
  }

  private scalar(node: Node): ScalarExpr {
    this.enter(node);
    try {
      const kids = this.children(node);
      if (node.name === 'ScalarExpression' && kids.length === 1) return this.scalar(kids[0] as Node);
      if (node.name === 'ScalarExpression' && kids.length === 3 && kids[1]?.name === 'ScalarOp') {
        const op = this.text(kids[1]) as '+' | '-' | '*' | '/' | '%' | '^';
        return { type: 'arith', op, left: this.scalar(kids[0] as Node), right: this.scalar(kids[2] as Node) };
      }
      if (node.name === 'ScalarExpression' && kids.length === 0 && this.q[node.from] === '(') {
        throw this.unsupported('unsupported: scalar expression', node.from);
      }
      switch (node.name) {
        case 'Integer':
        case 'Float': {
          const v = Number(this.text(node));
          if (!Number.isFinite(v)) throw new TraceQLError('invalid', `number out of range: ${this.text(node)}`, node.from);
          return { type: 'number', value: v, duration: false };
        }
        case 'Duration': {
          const nanos = parseGoDuration(this.text(node));
          if (nanos === undefined) throw new TraceQLError('invalid', `invalid duration ${JSON.stringify(this.text(node))}`, node.from);
          return { type: 'number', value: nanos, duration: true };
        }
        case 'Aggregate': {
          const text = this.text(node).replace(/\s+/g, '');
          if (text === 'count()') return { type: 'aggregate', fn: 'count', pos: node.from };
          const fnNode = kids.find((c) => c.name === 'AggregateExpression');
          const fieldNode = kids.find((c) => c.name === 'FieldExpression');
          const fn = fnNode ? this.text(fnNode) : '';
          if (!AGGREGATES.has(fn) || !fieldNode) throw this.unsupported(`unsupported: aggregate ${JSON.stringify(this.snip(node))}`, node.from);
          const o = this.operand(fieldNode);
          if (o.kind !== 'field') throw this.unsupported(`unsupported: ${fn}() of an expression (give a field such as duration or span.x)`, fieldNode.from);
          this.noParent(o.field, fieldNode.from);
          if (o.field.type === 'intrinsic' && !NUMERIC_INTRINSICS.has(o.field.name)) {
            throw new TraceQLError('invalid', `${fn}() needs a numeric field, ${o.text} is not one`, fieldNode.from);
          }
          return { type: 'aggregate', fn: fn as AggregateFn, field: o.field, pos: node.from };
        }
        default:
          throw this.unsupported(`unsupported: ${this.describe(node)}`, node.from);
      }
    } finally {
      this.depth--;
    }
  }

  private metricsOp(node: Node): MetricsOp {
    const inner = this.children(node)[0];
    if (!inner) throw new TraceQLError('syntax', 'syntax error: empty metrics function', node.from);
    const kids = this.children(inner);
    const group = kids.find((c) => c.name === 'GroupOperation');
    const by = group ? this.fieldList(group) : [];
    const measured = (n: Node | undefined, fn: string): FieldRef => {
      const f = n ? this.children(n)[0] : undefined;
      if (!n || !f) throw new TraceQLError('invalid', `${fn}() needs a field such as duration`, inner.from);
      const o: Operand = f.name === 'IntrinsicField'
        ? { kind: 'field', field: this.intrinsic(f), pos: f.from, text: this.text(f) }
        : f.name === 'AttributeField'
          ? { kind: 'field', field: this.attribute(f), pos: f.from, text: this.text(f) }
          : this.operand(f);
      if (o.kind !== 'field') throw new TraceQLError('invalid', `${fn}() needs a field such as duration, got ${JSON.stringify(this.snip(n))}`, n.from);
      this.noParent(o.field, n.from);
      if (o.field.type === 'intrinsic' && !NUMERIC_INTRINSICS.has(o.field.name)) {
        throw new TraceQLError('invalid', `${fn}() needs a numeric field, ${o.text} is not one`, n.from);
      }
      return o.field;
    };
    switch (inner.name) {
      case 'MetricsOperationBasic': {
        const t = kids.find((c) => c.name === 'MetricsOperationBasicType');
        const fn = t ? this.text(t) : '';
        if (fn !== 'rate' && fn !== 'count_over_time') throw this.unsupported(`unsupported: metrics function ${JSON.stringify(fn)}`, inner.from);
        return { fn, by };
      }
      case 'MetricsOverTime': {
        const t = kids.find((c) => c.name === 'MetricsOverTimeType');
        const fn = t ? this.text(t) : '';
        if (!['sum_over_time', 'min_over_time', 'max_over_time', 'avg_over_time'].includes(fn)) {
          throw this.unsupported(`unsupported: metrics function ${JSON.stringify(fn)}`, inner.from);
        }
        return { fn: fn as MetricsFn, field: measured(kids.find((c) => c.name === 'MetricsExpression'), fn), by };
      }
      case 'MetricsOperationHistogram':
        return { fn: 'histogram_over_time', field: measured(kids.find((c) => c.name === 'MetricsExpression'), 'histogram_over_time'), by };
      case 'MetricsOperationQuantile': {
        const args = kids.find((c) => c.name === 'MetricsOperationQuantileArgs');
        const argKids = args ? this.children(args) : [];
        const field = measured(argKids.find((c) => c.name === 'MetricsExpression'), 'quantile_over_time');
        const quantiles: number[] = [];
        for (const a of argKids) {
          if (a.name !== 'MetricsOperationQuantileArgsType') continue;
          const v = Number(this.text(a));
          if (!Number.isFinite(v) || v < 0 || v > 1) throw new TraceQLError('invalid', `a quantile must be between 0 and 1, got ${this.text(a)}`, a.from);
          quantiles.push(v);
        }
        if (quantiles.length === 0) throw new TraceQLError('invalid', 'quantile_over_time() needs at least one quantile, e.g. quantile_over_time(duration, 0.99)', inner.from);
        return { fn: 'quantile_over_time', field, quantiles, by };
      }
      case 'MetricsOperationCompare': {
        const sel = kids.find((c) => c.name === 'SpansetFilter');
        if (!sel) throw new TraceQLError('invalid', 'compare() needs a selection such as compare({ status = error })', inner.from);
        const nums = kids.filter((c) => c.name === 'Integer').map((c) => ({ v: Number(this.text(c)), pos: c.from }));
        const topN = nums[0]?.v ?? 10;
        if (!Number.isInteger(topN) || topN < 1 || topN > 1000) throw new TraceQLError('invalid', 'compare()\'s topN must be between 1 and 1000', nums[0]?.pos ?? inner.from);
        const compare: NonNullable<MetricsOp['compare']> = { selection: this.filter(sel), topN };
        const ts = (x: { v: number } | undefined): bigint | undefined => (x === undefined || x.v === 0 ? undefined : BigInt(x.v) * (x.v < 1e12 ? 1_000_000_000n : 1n));
        const s0 = ts(nums[1]);
        const e0 = ts(nums[2]);
        if (s0 !== undefined) compare.startNs = s0;
        if (e0 !== undefined) compare.endNs = e0;
        return { fn: 'compare', by, compare };
      }
      default:
        throw this.unsupported(`unsupported: ${this.describe(inner)}`, inner.from);
    }
  }

  private topStage(node: Node): NonNullable<MetricsOp['top']> {
    const kids = this.children(node);
    const t = kids.find((c) => c.name === 'MetricsAggregatorFunctionType');
    const n = kids.find((c) => c.name === 'Integer');
    const fn = t ? this.text(t) : '';
    if (fn !== 'topk' && fn !== 'bottomk') throw this.unsupported(`unsupported: ${JSON.stringify(fn)}`, node.from);
    const v = n ? Number(this.text(n)) : NaN;
    if (!Number.isInteger(v) || v < 1) throw new TraceQLError('invalid', `${fn}() needs a whole number of series >= 1`, n?.from ?? node.from);
    return { fn, n: v };
  }

  private filter(node: Node): Expr {
    const kids = this.children(node);
    if (kids.length === 0) return { type: 'const', value: true };
    const only = kids[0];
    if (kids.length > 1 || !only || only.name !== 'FieldExpression') {
      const k = kids[1] ?? only ?? node;
      throw this.unsupported(`unsupported: ${this.describe(k)}`, k.from);
    }
    const o = this.operand(only);
    return this.asExpr(o);
  }

  // ---- field expressions ---------------------------------------------------------

  private asExpr(o: Operand): Expr {
    if (o.kind === 'expr') return o.expr;
    if (o.kind === 'static') {
      if (o.lit.type === 'boolean') return { type: 'const', value: o.lit.value };
      throw new TraceQLError('invalid', `expected a condition, got the value ${JSON.stringify(o.text)}`, o.pos);
    }
    throw this.unsupported(
      `unsupported: bare field ${JSON.stringify(o.text)} (compare it, e.g. ${o.text} != nil)`,
      o.pos,
    );
  }

  private operand(node: Node): Operand {
    this.enter(node);
    try {
      return this.operandInner(node);
    } finally {
      this.depth--;
    }
  }

  private operandInner(node: Node): Operand {
    const kids = this.children(node);
    const pos = node.from;
    if (this.isFieldOpChain(node)) return this.fieldChain(node);
    if (node.name === 'FieldExpression' && kids.length === 1) {
      const k = kids[0] as Node;
      switch (k.name) {
        case 'IntrinsicField':
          return { kind: 'field', field: this.intrinsic(k), pos: k.from, text: this.text(k) };
        case 'AttributeField':
          return { kind: 'field', field: this.attribute(k), pos: k.from, text: this.text(k) };
        case 'Static':
          return { kind: 'static', lit: this.literal(k), pos: k.from, text: this.text(k) };
        case 'Parent':
          throw this.unsupported('unsupported: parent scope', k.from);
        case 'FieldExpression': {
          const lead = this.q[pos];
          if (lead === '!') return this.negated(node, k, pos);
          const inner = this.operand(k);
          if (lead === '(') return inner;
          if (lead === '-') {
            if (inner.kind === 'static') {
              const lit = inner.lit;
              if (lit.type === 'number') return { kind: 'static', lit: { type: 'number', value: -lit.value }, pos, text: this.text(node) };
              if (lit.type === 'duration') return { kind: 'static', lit: { type: 'duration', nanos: -lit.nanos }, pos, text: this.text(node) };
              throw new TraceQLError('invalid', `cannot negate ${JSON.stringify(inner.text)}`, pos);
            }
            const zero: Operand = { kind: 'static', lit: { type: 'number', value: 0 }, pos, text: '0' };
            return this.arith(zero, '-', inner, pos, this.text(node));
          }
          throw this.unsupported(`unsupported: ${this.describe(node)}`, pos);
        }
        default:
          throw this.unsupported(`unsupported: ${this.describe(k)}`, k.from);
      }
    }
    if (node.name === 'FieldExpression' && kids.length === 3) {
      const [l, op, r] = kids as [Node, Node, Node];
      if (op.name === 'And' || op.name === 'Or') {
        const left = this.asExpr(this.operand(l));
        const right = this.asExpr(this.operand(r));
        return { kind: 'expr', expr: { type: op.name === 'And' ? 'and' : 'or', left, right }, pos };
      }
    }
    throw this.unsupported(`unsupported: ${this.describe(node)}`, pos);
  }

  /**
   * `!` over k. lezer-traceql 1.0.0 lets it take a whole `&&` / `||` chain: `!(a) && b` comes as
   * `!((a) && b)`. In Tempo's grammar it binds tighter than both, so it goes down to the chain's
   * first operand (a parenthesised chain is one operand: `!(a && b)` keeps its meaning).
   */
  private negated(node: Node, k: Node, pos: number): Operand {
    const kids = this.children(k);
    const op = kids.length === 3 ? kids[1]?.name : undefined;
    if (k.name === 'FieldExpression' && (op === 'And' || op === 'Or')) {
      const left = this.asExpr(this.negated(node, kids[0] as Node, pos));
      const right = this.asExpr(this.operand(kids[2] as Node));
      return { kind: 'expr', expr: { type: op === 'And' ? 'and' : 'or', left, right }, pos };
    }
    const inner = this.operand(k);
    if (inner.kind === 'static' && inner.lit.type === 'boolean') {
      return { kind: 'static', lit: { type: 'boolean', value: !inner.lit.value }, pos, text: this.text(node) };
    }
    return { kind: 'expr', expr: { type: 'not', expr: this.asExpr(inner) }, pos };
  }

  // lezer-traceql 1.0.0 gives every FieldOp (comparisons and arithmetic alike) one
  // precedence, left to right, and lets a unary minus take a whole comparison:
  // `a * 2 < b - 1` comes as `((a * 2) < b) - 1` and `-a < 1` as `-(a < 1)`. Tempo binds
  // `^` tightest, then `* / %`, then `+ -`, then the comparisons, with unary minus above
  // all. So a chain of FieldOps is flattened back into its operands and operators and
  // regrouped here (parentheses, && and || keep the grammar's grouping).

  /** a FieldExpression `l FieldOp r`, or a unary minus over one */
  private isFieldOpChain(node: Node): boolean {
    if (node.name !== 'FieldExpression') return false;
    const kids = this.children(node);
    if (kids.length === 3) return kids[1]?.name === 'FieldOp';
    if (kids.length === 1 && kids[0]?.name === 'FieldExpression' && this.q[node.from] === '-') return this.isFieldOpChain(kids[0]);
    return false;
  }

  /** the operands (with their unary minuses) and operators of a FieldOp chain, in order */
  private flatten(node: Node, out: ({ atom: Node; neg: number } | { op: string; pos: number })[]): void {
    const kids = this.children(node);
    if (node.name === 'FieldExpression' && kids.length === 3 && kids[1]?.name === 'FieldOp') {
      this.flatten(kids[0] as Node, out);
      out.push({ op: this.text(kids[1]), pos: kids[1].from });
      this.flatten(kids[2] as Node, out);
      return;
    }
    if (node.name === 'FieldExpression' && kids.length === 1 && kids[0]?.name === 'FieldExpression' && this.q[node.from] === '-' && this.isFieldOpChain(kids[0])) {
      const at = out.length;
      this.flatten(kids[0], out);
      const first = out[at];
      if (first && 'atom' in first) first.neg++;
      return;
    }
    out.push({ atom: node, neg: 0 });
  }

  private fieldChain(node: Node): Operand {
    const items: ({ atom: Node; neg: number } | { op: string; pos: number })[] = [];
    this.flatten(node, items);
    let i = 0;
    const PREC: Record<string, number> = { '^': 4, '*': 3, '/': 3, '%': 3, '+': 2, '-': 2 };
    const prec = (op: string): number => PREC[op] ?? (COMPARISON_OPS.has(op) ? 1 : 0);
    const atom = (): Operand => {
      const it = items[i++];
      if (!it || !('atom' in it)) throw new TraceQLError('syntax', 'syntax error: missing operand', it && 'pos' in it ? it.pos : node.to);
      let o = this.operand(it.atom);
      for (let n = 0; n < it.neg; n++) {
        if (o.kind === 'static' && o.lit.type === 'number') o = { ...o, lit: { type: 'number', value: -o.lit.value } };
        else if (o.kind === 'static' && o.lit.type === 'duration') o = { ...o, lit: { type: 'duration', nanos: -o.lit.nanos } };
        else if (o.kind === 'static') throw new TraceQLError('invalid', `cannot negate ${JSON.stringify(o.text)}`, o.pos);
        else o = this.arith({ kind: 'static', lit: { type: 'number', value: 0 }, pos: o.pos, text: '0' }, '-', o, o.pos, `-${o.kind === 'expr' ? '' : o.text}`);
      }
      return o;
    };
    // precedence climbing; ^ is right-associative, comparisons do not chain
    const expr = (min: number): Operand => {
      let left = atom();
      let compared = false;
      for (;;) {
        const it = items[i];
        if (!it || !('op' in it)) return left;
        const p = prec(it.op);
        if (p === 0) throw this.unsupported(`unsupported: operator ${JSON.stringify(it.op)}`, it.pos);
        if (p < min) return left;
        i++;
        const right = expr(it.op === '^' ? p : p + 1);
        if (p === 1) {
          if (compared) throw this.unsupported('unsupported: chained comparisons (join them with &&)', it.pos);
          left = { kind: 'expr', expr: this.comparison(left, it.op as ComparisonOp, right, it.pos), pos: left.pos };
          compared = true;
        } else {
          left = this.arith(left, it.op as ArithOp, right, it.pos, this.q.slice(left.pos, it.pos + it.op.length) + '…');
        }
      }
    };
    return expr(1);
  }

  /** `left op right` as arithmetic: every operand must be able to be a number */
  private arith(left: Operand, op: ArithOp, right: Operand, opPos: number, text: string): Operand {
    return { kind: 'value', value: { type: 'arith', op, left: this.numeric(left, op), right: this.numeric(right, op) }, pos: left.pos < opPos ? left.pos : opPos, text };
  }

  /** an operand of arithmetic or of an order comparison between computed values */
  private numeric(o: Operand, op: string): ValueExpr {
    switch (o.kind) {
      case 'value':
        return o.value;
      case 'static':
        if (o.lit.type === 'number') return { type: 'literal', value: o.lit };
        if (o.lit.type === 'duration') return { type: 'literal', value: o.lit };
        throw new TraceQLError('invalid', `${op} needs numbers or durations, got ${JSON.stringify(o.text)}`, o.pos);
      case 'field':
        this.notEventOrLink(o.field, o.pos, 'in arithmetic');
        if (o.field.type === 'intrinsic' && !NUMERIC_INTRINSICS.has(o.field.name)) {
          throw new TraceQLError('invalid', `${op} needs numbers or durations, ${o.text} is not one`, o.pos);
        }
        if (o.field.type === 'attribute' && o.field.parent) throw this.unsupported('unsupported: parent scope in arithmetic or between two fields (compare it with a value)', o.pos);
        return { type: 'field', field: o.field };
      case 'expr':
        throw new TraceQLError('invalid', `${op} needs numbers or durations, not a condition`, o.pos);
    }
  }

  private comparison(left: Operand, op: ComparisonOp, right: Operand, opPos: number): Expr {
    if (left.kind === 'expr' || right.kind === 'expr') {
      throw this.unsupported(`unsupported: comparing a condition with ${JSON.stringify(op)}`, opPos);
    }
    if (left.kind === 'value' || right.kind === 'value' || (left.kind === 'field' && right.kind === 'field')) {
      if (op === '=~' || op === '!~') throw this.unsupported(`unsupported: ${op} between two fields or on a computed value (match a field with a regex string)`, opPos);
      const pos = left.pos;
      if (left.kind === 'field' && right.kind === 'field' && (op === '=' || op === '!=')) {
        for (const f of [left, right]) {
          if (f.field.type === 'attribute' && f.field.parent) throw this.unsupported('unsupported: parent scope in arithmetic or between two fields (compare it with a value)', f.pos);
          this.notEventOrLink(f.field, f.pos, 'compared with another field');
        }
        return { type: 'valueCompare', left: { type: 'field', field: left.field }, op, right: { type: 'field', field: right.field }, pos };
      }
      return { type: 'valueCompare', left: this.numeric(left, op), op, right: this.numeric(right, op), pos };
    }
    let field: { field: FieldRef; pos: number; text: string };
    let value: { lit: Literal; pos: number; text: string };
    let theOp = op;
    if (left.kind === 'field' && right.kind === 'static') {
      field = left;
      value = right;
    } else if (left.kind === 'static' && right.kind === 'field') {
      const flipped = FLIPPED[op];
      if (!flipped) throw new TraceQLError('invalid', `the regex operator ${op} needs the field on its left`, opPos);
      field = right;
      value = left;
      theOp = flipped;
    } else {
      throw this.unsupported('unsupported: comparing two values', opPos);
    }
    const lit = this.checkTypes(field.field, field.text, theOp, value.lit, value.text, opPos, value.pos);
    return { type: 'compare', field: field.field, op: theOp, value: lit, pos: field.pos < value.pos ? field.pos : value.pos };
  }

  /** Type rules; returns the literal, normalised where needed (ids). */
  private checkTypes(field: FieldRef, fieldText: string, op: ComparisonOp, lit: Literal, litText: string, opPos: number, litPos: number): Literal {
    const isEq = op === '=' || op === '!=';
    const isRegex = op === '=~' || op === '!~';
    const bad = (why: string, at = litPos): TraceQLError => new TraceQLError('invalid', why, at);
    if (field.type === 'attribute') {
      if (lit.type === 'status' || lit.type === 'kind') {
        throw bad(`${JSON.stringify(litText)} is a ${lit.type} keyword; it can only be compared with ${lit.type}`);
      }
      if (isRegex && lit.type !== 'string') throw bad(`${op} needs a string (regular expression), got ${JSON.stringify(litText)}`);
      if ((lit.type === 'boolean' || lit.type === 'nil') && !isEq) {
        throw new TraceQLError('invalid', `${litText} can only be compared with = or !=`, opPos);
      }
      return lit;
    }
    switch (field.name) {
      case 'name':
      case 'statusMessage':
      case 'rootName':
      case 'rootServiceName':
        if (lit.type !== 'string') throw bad(`${fieldText} is a string; compare it with a quoted string, got ${JSON.stringify(litText)}`);
        return lit;
      case 'eventName':
        if (lit.type !== 'string') throw bad(`${fieldText} is a string; compare it with a quoted string, got ${JSON.stringify(litText)}`);
        return lit;
      case 'eventTimeSinceStart':
        if (isRegex) throw new TraceQLError('invalid', `${fieldText} cannot be matched with ${op}`, opPos);
        if (lit.type === 'duration') return lit;
        if (lit.type === 'number') return { type: 'duration', nanos: lit.value };
        throw bad(`${fieldText} must be compared with a duration such as 200ms, got ${JSON.stringify(litText)}`);
      case 'childCount':
        if (isRegex) throw new TraceQLError('invalid', `${fieldText} cannot be matched with ${op}`, opPos);
        if (lit.type !== 'number') throw bad(`${fieldText} must be compared with a number, got ${JSON.stringify(litText)}`);
        return lit;
      case 'status':
      case 'kind': {
        const allowed = field.name === 'status' ? STATUS_VALUES : KIND_VALUES;
        if (lit.type !== field.name) {
          throw bad(`${fieldText} must be compared with one of ${allowed.join(', ')} (unquoted), got ${JSON.stringify(litText)}`);
        }
        if (!isEq) throw new TraceQLError('invalid', `${fieldText} can only be compared with = or !=`, opPos);
        return lit;
      }
      case 'duration':
      case 'traceDuration':
        if (isRegex) throw new TraceQLError('invalid', `${fieldText} cannot be matched with ${op}`, opPos);
        if (lit.type === 'duration') return lit;
        if (lit.type === 'number') return { type: 'duration', nanos: lit.value };
        throw bad(`${fieldText} must be compared with a duration such as 200ms, got ${JSON.stringify(litText)}`);
      case 'traceId':
      case 'spanId':
      case 'parentSpanId':
      case 'linkTraceId':
      case 'linkSpanId': {
        if (!isEq) throw new TraceQLError('invalid', `${fieldText} can only be compared with = or !=`, opPos);
        if (lit.type === 'nil' && field.name === 'parentSpanId') return lit;
        if (lit.type !== 'string') throw bad(`${fieldText} must be compared with a quoted hex id, got ${JSON.stringify(litText)}`);
        const width = field.name === 'traceId' || field.name === 'linkTraceId' ? 32 : 16;
        const hex = lit.value.trim().toLowerCase();
        if (!new RegExp(`^[0-9a-f]{1,${width}}$`).test(hex)) {
          throw bad(`${fieldText} must be compared with up to ${width} hex digits, got ${JSON.stringify(lit.value)}`);
        }
        return { type: 'string', value: hex.padStart(width, '0') };
      }
    }
  }

  private intrinsic(node: Node): FieldRef {
    const text = this.text(node);
    const name = INTRINSICS[text];
    if (!name) throw this.unsupported(`unsupported: intrinsic ${JSON.stringify(text)}`, node.from);
    return { type: 'intrinsic', name };
  }

  private attribute(node: Node): FieldRef {
    if (this.childCountAt.has(node.from)) return { type: 'intrinsic', name: 'childCount' };
    const kids = this.children(node);
    let scope: AttributeScope = 'any';
    let parent = false;
    let ident: Node | undefined;
    for (const k of kids) {
      switch (k.name) {
        case 'Identifier':
          ident = k;
          break;
        case 'Span':
          scope = 'span';
          break;
        case 'Resource':
          scope = 'resource';
          break;
        case 'Parent':
          parent = true;
          break;
        case 'Event':
          scope = 'event';
          break;
        case 'Link':
          scope = 'link';
          break;
        case 'Instrumentation':
          throw this.unsupported(`unsupported: ${this.text(k)} scope`, k.from);
        default:
          throw this.unsupported(`unsupported: ${this.describe(k)}`, k.from);
      }
    }
    if (!ident) throw new TraceQLError('syntax', 'syntax error: missing attribute name', node.to);
    const name = unquoteIdentifier(this.text(ident), ident.from);
    if (name === '') throw new TraceQLError('invalid', 'empty attribute name', ident.from);
    if (parent && (scope === 'event' || scope === 'link')) throw this.unsupported(`unsupported: the parent's ${scope} attributes`, node.from);
    return parent ? { type: 'attribute', scope, name, parent: true } : { type: 'attribute', scope, name };
  }

  private literal(node: Node): Literal {
    const text = this.text(node);
    const kid = this.children(node)[0];
    if (kid) {
      switch (kid.name) {
        case 'String':
          return { type: 'string', value: unquoteString(this.text(kid), kid.from) };
        case 'Integer':
        case 'Float': {
          const v = Number(this.text(kid));
          if (!Number.isFinite(v)) throw new TraceQLError('invalid', `number out of range: ${this.text(kid)}`, kid.from);
          return { type: 'number', value: v };
        }
        case 'Duration': {
          const nanos = parseGoDuration(this.text(kid));
          if (nanos === undefined) throw new TraceQLError('invalid', `invalid duration ${JSON.stringify(this.text(kid))}`, kid.from);
          return { type: 'duration', nanos };
        }
        case 'TemplateVariable':
          throw this.unsupported(`unsupported: template variable ${JSON.stringify(this.text(kid))}`, kid.from);
        default:
          throw this.unsupported(`unsupported: ${this.describe(kid)}`, kid.from);
      }
    }
    if (text === 'true' || text === 'false') return { type: 'boolean', value: text === 'true' };
    if (text === 'nil') return { type: 'nil' };
    if ((STATUS_VALUES as readonly string[]).includes(text)) return { type: 'status', value: text as SpanStatus };
    if ((KIND_VALUES as readonly string[]).includes(text)) return { type: 'kind', value: text as SpanKind };
    throw this.unsupported(`unsupported: value ${JSON.stringify(text)}`, node.from);
  }

  // ---- helpers --------------------------------------------------------------------

  private enter(node: Node): void {
    if (++this.depth > MAX_DEPTH) {
      this.depth = 0;
      throw new TraceQLError('invalid', `query nested too deeply (more than ${MAX_DEPTH} levels)`, node.from);
    }
  }

  private children(node: Node): Node[] {
    const out: Node[] = [];
    for (let c = node.firstChild; c; c = c.nextSibling) {
      if (c.name === 'LineComment' || c.name === 'BlockComment') continue;
      out.push(c);
    }
    return out;
  }

  private text(node: Node): string {
    return this.q.slice(node.from, node.to);
  }

  private snip(node: Node): string {
    return truncate(this.text(node).replace(/\s+/g, ' '), 40);
  }

  private describe(node: Node): string {
    const what: Record<string, string> = {
      ScalarFilter: 'aggregate filter',
      GroupOperation: 'by()',
      SelectOperation: 'select()',
      CoalesceOperation: 'coalesce()',
      MetricsOperation: 'metrics function',
      MetricsAggregatorFunctions: 'metrics function',
    };
    const label = what[node.name] ?? node.name;
    return `${label} ${JSON.stringify(this.snip(node))}`;
  }

  private noParent(f: FieldRef, pos: number): void {
    if (f.type === 'attribute' && f.parent) throw this.unsupported('unsupported: parent scope outside a span condition (use it inside { })', pos);
    this.notEventOrLink(f, pos, 'outside a span condition');
  }

  /** event and link fields have one value per event or link, not per span: only `field op value` inside { } */
  private notEventOrLink(f: FieldRef, pos: number, where: string): void {
    if (isEventOrLinkField(f)) {
      throw this.unsupported(`unsupported: ${fieldToString(f)} ${where} (a span may have several events and links: compare it with a value inside { })`, pos);
    }
  }

  private unsupported(detail: string, pos: number): TraceQLError {
    return new TraceQLError('unsupported', detail, pos);
  }
}

function isSpansetNode(name: string): boolean {
  return (
    name === 'SpansetPipelineExpression' ||
    name === 'SpansetPipeline' ||
    name === 'WrappedSpansetPipeline' ||
    name === 'SpansetExpression' ||
    name === 'SpansetFilter'
  );
}

/** The span filter equivalent to `s` when it is only filters joined by `||` and `| { }`. */
function plainFilter(s: SpansetExpr): Expr | undefined {
  switch (s.type) {
    case 'filter':
      return s.expr;
    case 'setop': {
      if (s.op !== 'or') return undefined;
      const l = plainFilter(s.left);
      const r = plainFilter(s.right);
      return l && r ? { type: 'or', left: l, right: r } : undefined;
    }
    case 'pipeline': {
      if (s.stage.type === 'select') return plainFilter(s.input);
      if (s.stage.type !== 'filter') return undefined;
      const l = plainFilter(s.input);
      return l ? { type: 'and', left: l, right: s.stage.expr } : undefined;
    }
    case 'structural':
      return undefined;
  }
}

function selectedFields(s: SpansetExpr): FieldRef[] {
  switch (s.type) {
    case 'filter':
      return [];
    case 'setop':
    case 'structural':
      return [...selectedFields(s.left), ...selectedFields(s.right)];
    case 'pipeline':
      return [...selectedFields(s.input), ...(s.stage.type === 'select' || s.stage.type === 'by' ? s.stage.fields : [])];
  }
}

function hasBadEscape(quoted: string): boolean {
  for (let i = 1; i < quoted.length - 1; i++) {
    if (quoted[i] !== '\\') continue;
    const n = quoted[i + 1];
    if (n !== '"' && n !== '\\') return true;
    i++;
  }
  return false;
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

function tokenAt(q: string, at: number): string {
  const m = /^([A-Za-z_][\w.:]*|[0-9][\w.]*|"(?:[^"\\]|\\.)*"?|\S)/.exec(q.slice(at));
  return truncate(m ? (m[1] ?? '') : (q[at] ?? ''), 30);
}

/** A TraceQL string literal: "…" (the grammar allows only the escapes \" and \\) or `…` (raw). */
function unquoteString(raw: string, pos: number): string {
  if (raw.startsWith('`')) return raw.slice(1, -1);
  const body = raw.slice(1, -1);
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const ch = body[i] as string;
    const n = body[i + 1];
    if (ch === '\\' && (n === '"' || n === '\\')) {
      out += n;
      i++;
    } else if (ch === '\\' && n === undefined) {
      throw new TraceQLError('syntax', 'syntax error: unterminated escape in string', pos + 1 + i);
    } else {
      out += ch;
    }
  }
  return out;
}

/** An attribute name: dotted parts, any of which may be "quoted" (escapes \" and \\). */
function unquoteIdentifier(raw: string, pos: number): string {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i] as string;
    if (ch !== '"') {
      out += ch;
      continue;
    }
    let closed = false;
    for (i++; i < raw.length; i++) {
      const c = raw[i] as string;
      if (c === '\\' && (raw[i + 1] === '"' || raw[i + 1] === '\\')) {
        out += raw[i + 1];
        i++;
      } else if (c === '"') {
        closed = true;
        break;
      } else {
        out += c;
      }
    }
    if (!closed) throw new TraceQLError('syntax', 'syntax error: unterminated quoted attribute name', pos + i);
  }
  return out;
}
