// Query parameters of the HTTP API, parsed strictly: a value that does not parse is a 400
// naming the parameter and what it accepts, never a silent default.
import type { TagScope } from '../store/index.js';
import { parseGoDuration, withCondition, type Expr, type Literal, type Query } from '../traceql/index.js';
import { badParam } from './errors.js';

const INT64_MAX = 9_223_372_036_854_775_807n;
/** numbers above this are unix nanoseconds, below it unix seconds (1e14 s is year 3.2 million) */
const NS_THRESHOLD = 100_000_000_000_000n;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
const TIME_HINT = 'unix seconds, unix nanoseconds or RFC3339 (2024-05-01T12:00:00Z)';

/** unix seconds, unix ns or RFC3339 -> unix ns */
export function parseTime(v: string | null, name: string): bigint | undefined {
  if (v === null || v === '') return undefined;
  if (/^\d{1,20}$/.test(v)) {
    const n = BigInt(v);
    const ns = n > NS_THRESHOLD ? n : n * 1_000_000_000n;
    if (ns > INT64_MAX) throw badParam(`${name} out of range: ${clip(v)}`, TIME_HINT);
    return ns;
  }
  const m = RFC3339.exec(v);
  const ms = m ? Date.parse(v.replace(' ', 'T')) : NaN;
  // Date.parse rolls 2024-02-30 over into March: check the day against its month
  if (!m || Number.isNaN(ms) || Number(m[3]) > new Date(Date.UTC(Number(m[1]), Number(m[2]), 0)).getUTCDate()) {
    throw badParam(`invalid ${name} "${clip(v)}"`, TIME_HINT);
  }
  const frac = (m[7] ?? '').slice(1).padEnd(9, '0');
  return BigInt(Math.floor(ms / 1000)) * 1_000_000_000n + BigInt(frac || '0');
}

export interface Window {
  startNs: bigint | undefined;
  endNs: bigint | undefined;
}

/** `start`/`end` (see parseTime) and osprey's `since` (a Go duration before `end` or now) */
export function windowOf(p: URLSearchParams): Window {
  const endNs = parseTime(p.get('end'), 'end');
  let startNs = parseTime(p.get('start'), 'start');
  const s = p.get('since');
  if (s !== null && s !== '') {
    const d = parseGoDuration(s);
    if (d === undefined || d < 0) throw badParam(`invalid since "${clip(s)}"`, 'a Go duration such as 30s, 5m, 1h');
    if (startNs === undefined) startNs = (endNs ?? BigInt(Date.now()) * 1_000_000n) - BigInt(Math.round(d));
  }
  if (startNs !== undefined && endNs !== undefined && startNs > endNs) {
    throw badParam(`start is after end`, 'give start <= end');
  }
  return { startNs, endNs };
}

/** a non-negative decimal integer, capped at max (any N is accepted, the store bounds it) */
export function countOf(p: URLSearchParams, name: string, def: number, max: number): number {
  const v = p.get(name);
  if (v === null || v === '') return def;
  if (!/^\d+$/.test(v)) throw badParam(`invalid ${name} "${clip(v)}"`, 'a non-negative integer');
  const n = Number(v);
  return Math.min(n, max);
}

/** one of the given words */
export function choiceOf<T extends string>(p: URLSearchParams, name: string, choices: readonly T[], def: T): T {
  const v = p.get(name);
  if (v === null || v === '') return def;
  if (!(choices as readonly string[]).includes(v)) throw badParam(`invalid ${name} "${clip(v)}"`, `one of ${choices.join(', ')}`);
  return v as T;
}

/** Tempo's tag scopes; osprey stores no instrumentation scope attributes, so that one lists nothing */
export const TEMPO_SCOPES = ['resource', 'span', 'intrinsic', 'event', 'link', 'instrumentation'] as const;
export type TempoScope = (typeof TEMPO_SCOPES)[number];

export function scopeOf(p: URLSearchParams): TempoScope | undefined {
  const v = p.get('scope');
  if (v === null || v === '' || v === 'all') return undefined;
  if (!(TEMPO_SCOPES as readonly string[]).includes(v)) throw badParam(`unknown scope "${clip(v)}"`, `one of all, ${TEMPO_SCOPES.join(', ')}`);
  return v as TempoScope;
}

export function storeScope(s: TempoScope): TagScope | undefined {
  return s === 'instrumentation' ? undefined : s;
}

/**
 * Tempo's legacy search parameters: `tags` (logfmt `key=value` pairs, every pair must match),
 * `minDuration`, `maxDuration` (Go durations). Returns the conditions to AND with `q`.
 */
export function legacySearch(p: URLSearchParams): Expr | undefined {
  const parts: Expr[] = [];
  const tags = p.get('tags');
  if (tags !== null && tags.trim() !== '') {
    const q = p.get('q');
    if (q !== null && q.trim() !== '') throw badParam('give either q (TraceQL) or tags, not both', 'put the tag conditions into the TraceQL query');
    for (const [key, value] of parseLogfmt(tags)) parts.push(tagCondition(key, value));
  }
  const min = durationParam(p, 'minDuration');
  const max = durationParam(p, 'maxDuration');
  if (min !== undefined && max !== undefined && min > max) throw badParam('minDuration is greater than maxDuration', 'give minDuration <= maxDuration');
  if (min !== undefined) parts.push(compare({ type: 'intrinsic', name: 'duration' }, '>=', { type: 'duration', nanos: min }));
  if (max !== undefined) parts.push(compare({ type: 'intrinsic', name: 'duration' }, '<=', { type: 'duration', nanos: max }));
  return parts.reduce<Expr | undefined>((acc, e) => (acc ? { type: 'and', left: acc, right: e } : e), undefined);
}

export function withLegacy(query: Query, extra: Expr | undefined): Query {
  return extra ? withCondition(query, extra) : query;
}

function durationParam(p: URLSearchParams, name: string): number | undefined {
  const v = p.get(name);
  if (v === null || v === '') return undefined;
  const d = parseGoDuration(v);
  if (d === undefined || d < 0) throw badParam(`invalid ${name} "${clip(v)}"`, 'a Go duration such as 100ms, 1.5s, 2m');
  return d;
}

function compare(field: Extract<Expr, { type: 'compare' }>['field'], op: '=' | '>=' | '<=', value: Literal): Expr {
  return { type: 'compare', field, op, value, pos: 0 };
}

/** a legacy tag: span name, status, or an attribute of the span or its resource */
function tagCondition(key: string, value: string): Expr {
  if (key === 'name') return compare({ type: 'intrinsic', name: 'name' }, '=', { type: 'string', value });
  if (key === 'status' || key === 'status.code') {
    const s = value.replace(/^STATUS_CODE_/i, '').toLowerCase();
    if (s !== 'ok' && s !== 'error' && s !== 'unset') throw badParam(`invalid status "${clip(value)}" in tags`, 'one of ok, error, unset');
    return compare({ type: 'intrinsic', name: 'status' }, '=', { type: 'status', value: s });
  }
  const field = { type: 'attribute', scope: 'any', name: key } as const;
  const asString = compare(field, '=', { type: 'string', value });
  // 500 in tags finds http.response.status_code, which is stored as a number
  if (/^-?\d+(\.\d+)?$/.test(value) && Number.isFinite(Number(value))) {
    return { type: 'or', left: asString, right: compare(field, '=', { type: 'number', value: Number(value) }) };
  }
  return asString;
}

/** logfmt: `key=value key2="quoted \" value"`; every key needs a non-empty value */
export function parseLogfmt(text: string): [string, string][] {
  const out: [string, string][] = [];
  let i = 0;
  const fail = (why: string): never => {
    throw badParam(`invalid tags "${clip(text)}": ${why}`, 'logfmt pairs such as service.name=backend http.response.status_code=500');
  };
  while (i < text.length) {
    if (text[i] === ' ' || text[i] === '\t') {
      i++;
      continue;
    }
    const k0 = i;
    while (i < text.length && !/[\s="]/.test(text[i]!)) i++;
    const key = text.slice(k0, i);
    if (!key) fail(`expected a key at ${i}`);
    if (text[i] !== '=') fail(`"${clip(key)}" has no value`);
    i++;
    let value = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= text.length) fail('unterminated quoted value');
        const c = text[i]!;
        if (c === '\\' && i + 1 < text.length) {
          value += text[i + 1];
          i += 2;
        } else if (c === '"') {
          i++;
          break;
        } else {
          value += c;
          i++;
        }
      }
      if (i < text.length && !/\s/.test(text[i]!)) fail(`unexpected "${text[i]}" after a quoted value at ${i}`);
    } else {
      const v0 = i;
      while (i < text.length && !/\s/.test(text[i]!)) {
        if (text[i] === '"' || text[i] === '=') fail(`unexpected "${text[i]}" in the value of ${clip(key)} at ${i}`);
        i++;
      }
      value = text.slice(v0, i);
    }
    if (value === '') fail(`"${clip(key)}" has an empty value`);
    out.push([key, value]);
  }
  return out;
}

/** long inputs are quoted shortened in messages */
export function clip(v: string, max = 80): string {
  return v.length > max ? `${v.slice(0, max)}…(${v.length} characters)` : v;
}
