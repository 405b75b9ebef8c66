// Building TraceQL from the quick filters: each filter owns one condition in the query
// the user sees. Setting a filter replaces its condition (or adds it), clearing removes
// it; whatever else the user typed stays as it is.

/** the quick filters and the TraceQL field each writes */
export const FILTER_FIELDS = {
  ns: 'resource.k8s.namespace.name',
  svc: 'resource.service.name',
  route: 'span.http.route',
  status: 'status',
  min: 'duration',
  max: 'duration',
} as const;
export type FilterKey = keyof typeof FILTER_FIELDS;

const VALUE = String.raw`(?:"(?:[^"\\]|\\.)*"|[^\s&|}()]+)`;
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function opFor(key: FilterKey): string {
  return key === 'min' ? '>=' : key === 'max' ? '<=' : '=';
}

function conditionRe(key: FilterKey): RegExp {
  const op = key === 'min' ? '>=?' : key === 'max' ? '<=?' : '(?:=|!=|=~)';
  return new RegExp(String.raw`${esc(FILTER_FIELDS[key])}\s*${op}\s*(${VALUE})`);
}

export function quote(v: string): string {
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** the value of a filter's condition in q, if there is one */
export function getCondition(q: string, key: FilterKey): string | undefined {
  const m = conditionRe(key).exec(q);
  if (!m) return undefined;
  const v = m[1]!;
  return v.startsWith('"') ? (JSON.parse(v) as string) : v;
}

/** q with the filter's condition set to `value` (a TraceQL literal), or removed when undefined */
export function setCondition(q: string, key: FilterKey, value: string | undefined): string {
  const re = conditionRe(key);
  let out = q.trim() || '{}';
  const cond = value === undefined ? undefined : `${FILTER_FIELDS[key]} ${opFor(key)} ${value}`;
  if (re.test(out)) {
    if (cond) return out.replace(re, cond);
    // remove it with one neighbouring &&
    const full = new RegExp(String.raw`\s*&&\s*${re.source}|${re.source}\s*&&\s*|${re.source}`);
    out = out.replace(full, '');
    return out.replace(/\{\s*\}/, '{}');
  }
  if (!cond) return out;
  if (/^\{\s*\}$/.test(out)) return `{ ${cond} }`;
  // one spanset: add the condition inside it
  const one = /^\{([^{}]*)\}$/.exec(out);
  if (one) return `{ ${one[1]!.trim()} && ${cond} }`;
  return `(${out}) && { ${cond} }`;
}

export const TIME_RANGES = ['5m', '15m', '1h', '6h', '24h', '7d'] as const;

/** a Go duration to ns; undefined when it does not parse */
export function parseDur(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)$/.exec(s.trim());
  if (!m) return undefined;
  const mult: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  return Number(m[1]) * mult[m[2]!]!;
}
