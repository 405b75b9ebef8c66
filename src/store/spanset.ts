// TraceQL spanset expressions (structural operators, spanset && / ||, pipelines) → SQL.
//
// Every spanset expression becomes a CTE with one row per selected span:
//   rid (the span's rowid), tid (trace id), sid (span id), psid (parent id), st (start),
//   g (the spanset the span is in within its trace: '' until a by() splits them),
//   then c0, c1... : the values later stages need (by() keys, aggregated fields), read
//   from the span row once, where the leaf filter scans it. Carrying them keeps every
//   stage join-free: joining the relation back to `spans` on rowid made DuckDB scan the
//   whole table (not only the window) for each by() or aggregate.
// A trace matches when its rows are not empty. Everything is evaluated by DuckDB; the
// CTEs are MATERIALIZED because most are read more than once (a && b reads each side twice).
// Everything is per trace, so a caller may restrict the window to the traces it wants
// (queries.ts evaluates a search newest slice first).
//
// Semantics (Tempo's TraceQL documentation):
//   A && B   both sides select spans in the trace → the spans of both;  A || B: either
//   A > B    B spans whose parent is an A span       A < B   B spans that are the parent of an A span
//   A >> B   B spans with an A span among ancestors  A << B  B spans that are an ancestor of an A span
//   A ~ B    B spans with a sibling (same parent, another span) in A
//   A &op B  the spans of both sides that take part in the relation: (A op B) ∪ (B op⁻¹ A)
//   A !op B  B spans for which no A span stands in the relation (`{ } !< {X}` = X leaves)
// Ancestry is a recursive CTE walking parent ids upwards over the spans of the traces
// that have both sides (within the search window); UNION semantics stop it on cycles.

import type {
  ComparisonOp,
  FieldRef,
  PipelineStage,
  ScalarExpr,
  SpansetExpr,
  StructuralOp,
} from '../traceql/index.js';
import { fieldToString } from '../traceql/index.js';
import { compileFilter, windowSql, type CompileContext } from './compile.js';
import { FieldValues } from './values.js';

export { FieldValues };

const BASE_COLUMNS = ['rid', 'tid', 'sid', 'psid', 'st', 'g'];

/** a value a pipeline stage needs: a by() key (JSON text) or an aggregated field (number) */
interface Carried {
  kind: 'text' | 'number';
  field: FieldRef;
}

export class SpansetCompiler {
  private readonly ctes: string[] = [];
  private recursive = false;
  private n = 0;
  /** carried value columns c0, c1...: key `${kind}:${field}` → index */
  private readonly carried = new Map<string, number>();
  private readonly carriedList: Carried[] = [];

  constructor(private readonly ctx: CompileContext) {}

  /** the relation's columns, in order */
  get columns(): string[] {
    return [...BASE_COLUMNS, ...this.carriedList.map((_, i) => `c${i}`)];
  }

  /** `WITH ...` defining the expression's relation, and its name. */
  compile(e: SpansetExpr): { with: string; rel: string } {
    this.collect(e);
    const rel = this.rel(e);
    return { with: `WITH ${this.recursive ? 'RECURSIVE ' : ''}${this.ctes.join(',\n')}`, rel };
  }

  /** the values the stages of `e` need, as carried columns */
  private collect(e: SpansetExpr): void {
    const need = (kind: Carried['kind'], field: FieldRef): void => {
      const key = `${kind}:${fieldToString(field)}`;
      if (this.carried.has(key)) return;
      this.carried.set(key, this.carriedList.length);
      this.carriedList.push({ kind, field });
    };
    const scalar = (x: ScalarExpr): void => {
      if (x.type === 'aggregate' && x.field) need('number', x.field);
      if (x.type === 'arith') {
        scalar(x.left);
        scalar(x.right);
      }
    };
    switch (e.type) {
      case 'filter':
        return;
      case 'setop':
      case 'structural':
        this.collect(e.left);
        this.collect(e.right);
        return;
      case 'pipeline':
        this.collect(e.input);
        if (e.stage.type === 'by') for (const f of e.stage.fields) need('text', f);
        if (e.stage.type === 'scalarFilter') {
          scalar(e.stage.left);
          scalar(e.stage.right);
        }
    }
  }

  /** the carried column holding `field`'s value of `kind`, on relation alias `a` */
  private col(a: string, kind: Carried['kind'], field: FieldRef): string {
    const i = this.carried.get(`${kind}:${fieldToString(field)}`);
    if (i === undefined) throw new Error(`value ${kind}:${fieldToString(field)} not carried`);
    return `${a}.c${i}`;
  }

  /** `a.rid, a.tid, ...` */
  private cols(a: string): string {
    return this.columns.map((c) => `${a}.${c}`).join(', ');
  }

  private add(sql: string, materialized = true): string {
    const name = `ss${++this.n}`;
    this.ctes.push(`${name} AS ${materialized ? 'MATERIALIZED ' : ''}(${sql})`);
    return name;
  }

  private win(col = 'start_ns'): string {
    return windowSql(this.ctx.params, this.ctx.startNs, this.ctx.endNs, col);
  }

  private filterRel(cond: string): string {
    const base = 's.rid, s.trace_id AS tid, s.span_id AS sid, s.parent_span_id AS psid, s.start_ns AS st, \'\' AS g';
    const v = new FieldValues(this.ctx);
    const values = this.carriedList.map((c, i) => `${c.kind === 'text' ? v.text(c.field) : v.number(c.field)} AS c${i}`);
    // a subquery: the filter's column names are unqualified, and resources has some of them
    return this.add(
      `SELECT ${[base, ...values].join(', ')} FROM (SELECT rowid AS rid, * FROM spans WHERE ${this.win()} AND ${cond}) s ${v.resourceJoin()}`,
    );
  }

  rel(e: SpansetExpr): string {
    switch (e.type) {
      case 'filter':
        return this.filterRel(compileFilter(e.expr, this.ctx));
      case 'setop': {
        const a = this.rel(e.left);
        const b = this.rel(e.right);
        if (e.op === 'or') return this.add(`SELECT * FROM ${a} UNION SELECT * FROM ${b}`);
        return this.add(
          `SELECT * FROM ${a} WHERE tid IN (SELECT tid FROM ${b}) UNION SELECT * FROM ${b} WHERE tid IN (SELECT tid FROM ${a})`,
        );
      }
      case 'structural':
        return this.structural(e.op, this.rel(e.left), this.rel(e.right));
      case 'pipeline':
        return this.stage(this.rel(e.input), e.stage);
    }
  }

  // ---- structural -------------------------------------------------------------------

  private structural(op: StructuralOp, a: string, b: string): string {
    if (op.startsWith('&')) {
      const base = op.slice(1) as StructuralOp;
      const inverse = ({ '>': '<', '<': '>', '>>': '<<', '<<': '>>', '~': '~' } as Record<string, StructuralOp>)[base] ?? base;
      const right = this.related(base, a, b, false);
      const left = this.related(inverse, b, a, false);
      return this.add(`SELECT * FROM ${right} UNION SELECT * FROM ${left}`);
    }
    if (op.startsWith('!')) return this.related(op.slice(1) as StructuralOp, a, b, true);
    return this.related(op, a, b, false);
  }

  /** the B spans standing in relation `op` to some A span (or to none, when `negate`) */
  private related(op: StructuralOp, a: string, b: string, negate: boolean): string {
    const join = negate ? 'ANTI JOIN' : 'SEMI JOIN';
    const sel = `SELECT ${this.cols('b')} FROM ${b} b`;
    switch (op) {
      case '>':
        return this.add(`${sel} ${join} ${a} a ON a.tid = b.tid AND a.sid = b.psid`);
      case '<':
        return this.add(`${sel} ${join} ${a} a ON a.tid = b.tid AND a.psid = b.sid`);
      case '~':
        return this.add(`${sel} ${join} ${a} a ON a.tid = b.tid AND a.psid = b.psid AND a.sid <> b.sid`);
      case '>>': {
        // each B span's ancestors: (rid of the B span, an ancestor's id)
        const t = this.traceSpans(a, b);
        const up = this.walkUp(`SELECT b.tid, b.rid, b.psid AS cur FROM ${b} b WHERE b.psid IS NOT NULL AND b.tid IN (SELECT tid FROM ${a})`, t, 'rid');
        const hit = this.add(`SELECT DISTINCT u.rid FROM ${up} u SEMI JOIN ${a} a ON a.tid = u.tid AND a.sid = u.cur`);
        return this.add(`${sel} ${join} ${hit} h ON h.rid = b.rid`);
      }
      case '<<': {
        // every ancestor of an A span
        const t = this.traceSpans(a, b);
        const up = this.walkUp(`SELECT a.tid, a.psid AS cur FROM ${a} a WHERE a.psid IS NOT NULL AND a.tid IN (SELECT tid FROM ${b})`, t);
        return this.add(`${sel} ${join} ${up} u ON u.tid = b.tid AND u.cur = b.sid`);
      }
      default:
        throw new Error(`structural operator ${op}`);
    }
  }

  /** the (tid, sid, psid) of the window's spans in traces that both sides select from */
  private traceSpans(a: string, b: string): string {
    return this.add(
      `SELECT trace_id AS tid, span_id AS sid, parent_span_id AS psid FROM spans
       WHERE ${this.win()} AND trace_id IN (SELECT tid FROM ${a}) AND trace_id IN (SELECT tid FROM ${b})`,
    );
  }

  /** recursive: from `seed` rows (tid, [rid,] cur), follow cur's parent until the root */
  private walkUp(seed: string, t: string, carry?: string): string {
    this.recursive = true;
    const name = `ss${++this.n}`;
    const c = carry ? `u.${carry}, ` : '';
    this.ctes.push(
      `${name} AS (${seed}
       UNION SELECT u.tid, ${c}p.psid AS cur FROM ${name} u JOIN ${t} p ON p.tid = u.tid AND p.sid = u.cur WHERE p.psid IS NOT NULL)`,
    );
    return name;
  }

  // ---- pipeline stages -------------------------------------------------------------------

  private stage(input: string, s: PipelineStage): string {
    const carried = this.carriedList.map((_, i) => `, i.c${i}`).join('');
    switch (s.type) {
      case 'select':
        return input;
      case 'coalesce':
        return this.add(`SELECT DISTINCT i.rid, i.tid, i.sid, i.psid, i.st, '' AS g${carried} FROM ${input} i`);
      case 'filter': {
        const cond = compileFilter(s.expr, this.ctx);
        return this.add(`SELECT i.* FROM ${input} i WHERE i.rid IN (SELECT rowid FROM spans WHERE ${this.win()} AND ${cond})`);
      }
      case 'by': {
        const g = s.fields.map((f) => `COALESCE(${this.col('i', 'text', f)}, 'null')`).join(` || chr(31) || `);
        return this.add(`SELECT DISTINCT i.rid, i.tid, i.sid, i.psid, i.st, ${g} AS g${carried} FROM ${input} i`);
      }
      case 'scalarFilter': {
        const aggs: string[] = [];
        const num = (f: FieldRef): string => this.col('i', 'number', f);
        const left = scalarSql(s.left, num, aggs);
        const right = scalarSql(s.right, num, aggs);
        const cols = aggs.map((a, i) => `${a} OVER w AS a${i}`).join(', ');
        return this.add(
          `SELECT ${this.columns.join(', ')} FROM (SELECT i.*, ${cols} FROM ${input} i WINDOW w AS (PARTITION BY i.tid, i.g))
           WHERE ${cmpSql(left, s.op, right)}`,
        );
      }
    }
  }
}

function cmpSql(l: string, op: ComparisonOp, r: string): string {
  return `COALESCE((${l}) ${op === '!=' ? '<>' : op} (${r}), FALSE)`;
}

/** a scalar expression over the aggregates, which are collected into `aggs` (referred to as a0, a1...) */
function scalarSql(e: ScalarExpr, num: (f: FieldRef) => string, aggs: string[]): string {
  switch (e.type) {
    case 'number':
      return `CAST(${Number(e.value)} AS DOUBLE)`;
    case 'arith': {
      const l = scalarSql(e.left, num, aggs);
      const r = scalarSql(e.right, num, aggs);
      if (e.op === '^') return `pow(${l}, ${r})`;
      if (e.op === '%') return `fmod(${l}, ${r})`;
      if (e.op === '/') return `(${l}) / NULLIF(${r}, 0)`;
      return `(${l}) ${e.op} (${r})`;
    }
    case 'aggregate': {
      const x = e.fn === 'count' ? 'count(*)' : `${e.fn}(${num(e.field as FieldRef)})`;
      aggs.push(x);
      return `CAST(a${aggs.length - 1} AS DOUBLE)`;
    }
  }
}

