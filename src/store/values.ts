// A field's value on a span row as SQL: JSON text (by() keys, labels, field-to-field
// equality) or a number (aggregates, arithmetic). Used by the spanset relations
// (spanset.ts), the metrics queries and the span filter (compile.ts).

import { VARCHAR } from '@duckdb/node-api';
import { TraceQLError, fieldToString, isEventOrLinkField, type FieldRef } from '../traceql/index.js';
import { jsonPointer, windowSql, type CompileContext } from './compile.js';
import { HOT_RESOURCE_ATTRS, HOT_SPAN_ATTRS, KIND_BY_CODE, STATUS_BY_CODE, decodeSql } from './schema.js';

/**
 * SQL for a field's value on a span row `s` (spans) with its resource `r` (joined only
 * when needed, see resourceJoin). With alias 'spans' (inside compileFilter, where the
 * table is not aliased and no join can be added) a resource attribute is read by a
 * correlated lookup in `resources` instead.
 */
export class FieldValues {
  private needResource = false;

  constructor(
    private readonly ctx: CompileContext,
    private readonly s = 's',
  ) {}

  /** the join that gives `r` for a span row `s`, when a value needs it */
  resourceJoin(): string {
    return this.needResource ? `LEFT JOIN resources r ON r.id = ${this.s}.res_id` : '';
  }

  /** a resource attribute's JSON text */
  private resourceJson(ptr: string): string {
    if (this.s !== 's') return `(SELECT json_extract(r.attributes, ${ptr}) FROM resources r WHERE r.id = ${this.s}.res_id)::VARCHAR`;
    this.needResource = true;
    return `json_extract(r.attributes, ${ptr})::VARCHAR`;
  }

  /** a string column's value: decoded when the store has codes in it (schema.ts SPAN_CODED) */
  private string(expr: string, col: string): string {
    return this.ctx.coded?.(col) ? decodeSql(expr) : expr;
  }

  /** the value as JSON text; NULL when absent */
  text(f: FieldRef): string {
    oneValuePerSpan(f);
    const P = this.ctx.params;
    const s = this.s;
    if (f.type === 'intrinsic') {
      switch (f.name) {
        case 'name':
          return `to_json(${this.string(`${s}.name`, 'name')})::VARCHAR`;
        case 'statusMessage':
          return `to_json(COALESCE(${s}.status_message, ''))::VARCHAR`;
        case 'status':
          return `to_json(${keywordCase(`${s}.status`, STATUS_BY_CODE)})::VARCHAR`;
        case 'kind':
          return `to_json(${keywordCase(`${s}.kind`, KIND_BY_CODE)})::VARCHAR`;
        case 'duration':
          return `${s}.duration_ns::VARCHAR`;
        case 'traceId':
          return `to_json(replace(${s}.trace_id::VARCHAR, '-', ''))::VARCHAR`;
        case 'spanId':
          return `to_json(lpad(lower(printf('%x', ${s}.span_id)), 16, '0'))::VARCHAR`;
        case 'parentSpanId':
          return `to_json(lpad(lower(printf('%x', ${s}.parent_span_id)), 16, '0'))::VARCHAR`;
        default:
          return `${this.number(f)}::VARCHAR`;
      }
    }
    const span = (): string => {
      const hot = HOT_SPAN_ATTRS[f.name];
      const json = `json_extract(${s}.attributes, ${P.add(jsonPointer(f.name), VARCHAR)})::VARCHAR`;
      if (!hot) return json;
      const col = this.string(`${s}.${hot[0]}`, hot[0]);
      const typed = hot[1] === 'string' ? `to_json(${col})::VARCHAR` : `(CASE WHEN ${col} = trunc(${col}) AND abs(${col}) < 1e15 THEN CAST(${col} AS BIGINT)::VARCHAR ELSE ${col}::VARCHAR END)`;
      return `COALESCE(${typed}, ${json})`;
    };
    const resource = (): string => {
      const hot = HOT_RESOURCE_ATTRS[f.name];
      if (hot) return `to_json(${this.string(`${s}.${hot[0]}`, hot[0])})::VARCHAR`;
      return this.resourceJson(P.add(jsonPointer(f.name), VARCHAR));
    };
    if (f.scope === 'span') return span();
    if (f.scope === 'resource') return resource();
    return `COALESCE(${span()}, ${resource()})`;
  }

  /** the value as a DOUBLE (durations in nanoseconds); NULL when absent or not a number */
  number(f: FieldRef): string {
    oneValuePerSpan(f);
    const P = this.ctx.params;
    const s = this.s;
    if (f.type === 'intrinsic') {
      switch (f.name) {
        case 'duration':
          return `CAST(${s}.duration_ns AS DOUBLE)`;
        case 'childCount': {
          const win = windowSql(P, this.ctx.startNs, this.ctx.endNs, 'c.start_ns');
          return `CAST((SELECT count(*) FROM spans c WHERE ${win} AND c.trace_id = ${s}.trace_id AND c.parent_span_id = ${s}.span_id) AS DOUBLE)`;
        }
        case 'traceDuration': {
          const win = windowSql(P, this.ctx.startNs, this.ctx.endNs, 't.start_ns');
          return `CAST((SELECT max(t.start_ns + t.duration_ns) - min(t.start_ns) FROM spans t WHERE ${win} AND t.trace_id = ${s}.trace_id) AS DOUBLE)`;
        }
        default:
          return 'CAST(NULL AS DOUBLE)';
      }
    }
    const span = (): string => {
      const hot = HOT_SPAN_ATTRS[f.name];
      const json = `TRY_CAST(json_extract(${s}.attributes, ${P.add(jsonPointer(f.name), VARCHAR)})::VARCHAR AS DOUBLE)`;
      return hot && hot[1] === 'number' ? `COALESCE(${s}.${hot[0]}, ${json})` : json;
    };
    const resource = (): string => `TRY_CAST(${this.resourceJson(P.add(jsonPointer(f.name), VARCHAR))} AS DOUBLE)`;
    if (f.scope === 'span') return span();
    if (f.scope === 'resource') return resource();
    return `COALESCE(${span()}, ${resource()})`;
  }
}

/** event and link fields have a value per event or link: the parser lets them only into comparisons (compile.ts) */
function oneValuePerSpan(f: FieldRef): void {
  if (isEventOrLinkField(f)) throw new TraceQLError('unsupported', `unsupported: ${fieldToString(f)} here (compare it with a value inside { })`, 0);
}

/** code → keyword as a CASE over fixed, known words (no user input) */
function keywordCase(col: string, words: readonly string[]): string {
  return `(CASE ${col} ${words.map((w, i) => `WHEN ${i} THEN '${w}'`).join(' ')} END)`;
}
