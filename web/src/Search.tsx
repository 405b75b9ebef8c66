// Search: the newest traces at once, a TraceQL box, quick filters that write TraceQL,
// a latency heatmap whose brushed region narrows the list and is compared with the rest.
import { useEffect, useMemo, useRef, useState } from 'react';
import { countTraces, searchTraces, tagValues, getServiceNamespaces, type Range, type TraceRow } from './api';
import { ago, count, dur, time } from './format';
import { HeatmapPanel, type Selection } from './Heatmap';
import { useLoad } from './hooks';
import { QueryBox, type QueryBoxHandle } from './QueryBox';
import { href, navigate, onLink } from './router';
import { Empty, Failed, Loading } from './states';
import { getCondition, parseDur, quote, setCondition, type FilterKey } from './traceql';

export const PAGE = 50;
export const RANGES: [label: string, since: string][] = [
  ['5m', '5m'],
  ['15m', '15m'],
  ['1h', '1h'],
  ['6h', '6h'],
  ['24h', '24h'],
  ['7d', '168h'],
];

export interface SearchState {
  q: string;
  range: Range;
  order: 'start' | 'duration';
  offset: number;
  sel?: Selection;
  /** caller>callee: only calls over this service-map edge */
  edge?: string;
}

export function readSearch(p: URLSearchParams): SearchState {
  const selStart = p.get('selStart');
  const selEnd = p.get('selEnd');
  return {
    q: p.get('q') ?? '{}',
    range: p.get('start') ? { start: p.get('start')!, end: p.get('end') ?? undefined } : { since: p.get('since') ?? '1h' },
    order: p.get('order') === 'duration' ? 'duration' : 'start',
    offset: Math.max(0, Number(p.get('offset')) || 0),
    edge: p.get('edge') ?? undefined,
    sel:
      selStart && selEnd
        ? { start: selStart, end: selEnd, minNs: Number(p.get('minNs') ?? 0), maxNs: Number(p.get('maxNs') ?? Number.MAX_SAFE_INTEGER) }
        : undefined,
  };
}

export function searchHref(s: Partial<SearchState>): string {
  return href('/', {
    q: s.q && s.q !== '{}' ? s.q : undefined,
    since: s.range?.start ? undefined : s.range?.since && s.range.since !== '1h' ? s.range.since : undefined,
    start: s.range?.start,
    end: s.range?.start ? s.range.end : undefined,
    order: s.order === 'duration' ? 'duration' : undefined,
    offset: s.offset || undefined,
    edge: s.edge,
    selStart: s.sel?.start,
    selEnd: s.sel?.end,
    minNs: s.sel ? s.sel.minNs : undefined,
    maxNs: s.sel && s.sel.maxNs < Number.MAX_SAFE_INTEGER ? s.sel.maxNs : undefined,
  });
}

/** the query the result list runs: the search, narrowed to the brushed region */
function listQuery(s: SearchState): { q: string; range: Range } {
  if (!s.sel) return { q: s.q, range: s.range };
  let q = s.q;
  q = setCondition(q, 'min', `${Math.floor(s.sel.minNs)}ns`);
  if (s.sel.maxNs < Number.MAX_SAFE_INTEGER) q = setCondition(q, 'max', `${Math.ceil(s.sel.maxNs)}ns`);
  return { q, range: { start: s.sel.start, end: s.sel.end } };
}

export function Search({ params, focusRef }: { params: URLSearchParams; focusRef: React.RefObject<QueryBoxHandle | null> }) {
  const s = readSearch(params);
  const [draft, setDraft] = useState(s.q);
  useEffect(() => setDraft(s.q), [s.q]);
  const go = (next: Partial<SearchState>, replace = false) => navigate(searchHref({ ...s, offset: 0, ...next }), { replace });

  const [retry, setRetry] = useState(0);
  const lq = listQuery(s);
  const key = JSON.stringify([lq, s.order, s.offset, s.edge, retry]);
  const res = useLoad(key, (signal) => searchTraces({ q: lq.q, range: lq.range, order: s.order, limit: PAGE, offset: s.offset, edge: s.edge }, signal), 'primary');
  // the total is its own request: the rows show first, the count when it is in (paging keeps it)
  const total = useLoad(JSON.stringify([lq, s.edge, retry]), (signal) => countTraces({ q: lq.q, range: lq.range, edge: s.edge }, signal), 'secondary');

  return (
    <div className="view search">
      <div className="query-row">
        <QueryBox ref={focusRef} value={draft} onChange={setDraft} onRun={(q) => go({ q, sel: undefined })} />
        <button type="button" className="primary" onClick={() => go({ q: draft, sel: undefined })}>
          Search
        </button>
      </div>
      <Filters s={s} draft={draft} go={go} />
      {s.edge && (
        <div className="edge-filter">
          Only calls over the edge <strong>{s.edge.replace('>', ' → ')}</strong> (server spans of the callee whose parent is a client span of the caller){' '}
          <button type="button" className="chip on" onClick={() => go({ edge: undefined })} aria-label="remove the edge filter">
            ✕
          </button>
        </div>
      )}
      <HeatmapPanel q={s.q} range={s.range} sel={s.sel} onSelect={(sel) => go({ sel })} />
      <Results s={s} res={res} total={total.state === 'ok' ? total.data : undefined} go={go} onRetry={() => setRetry((r) => r + 1)} />
    </div>
  );
}

function Filters({ s, draft, go }: { s: SearchState; draft: string; go(next: Partial<SearchState>): void }) {
  const set = (key: FilterKey, v: string | undefined) => go({ q: setCondition(draft, key, v), sel: undefined });
  const nsList = useLoad('ns', (signal) => getServiceNamespaces(signal).then((l) => [...new Set(l.map((x) => x.namespace))].sort()));
  const svcList = useLoad('svc', (signal) => tagValues('resource.service.name', signal).then((l) => l.map((v) => v.value)), 'background');
  const routeList = useLoad('route', (signal) => tagValues('span.http.route', signal).then((l) => l.map((v) => v.value)), 'background');
  const ns = getCondition(s.q, 'ns');
  const svc = getCondition(s.q, 'svc');
  const route = getCondition(s.q, 'route');
  const status = getCondition(s.q, 'status');
  const min = getCondition(s.q, 'min');
  const max = getCondition(s.q, 'max');
  const namespaces = nsList.data ?? [];
  return (
    <div className="filters" role="group" aria-label="quick filters">
      <div className="filter">
        <span className="filter-label">Namespace</span>
        {namespaces.length === 0 ? (
          <span className="muted" title="spans carry k8s.namespace.name when osprey runs with Kubernetes metadata">
            none seen
          </span>
        ) : (
          <div className="chips">
            {namespaces.slice(0, 10).map((n) => (
              <button key={n} type="button" className={`chip ${ns === n ? 'on' : ''}`} aria-pressed={ns === n} onClick={() => set('ns', ns === n ? undefined : quote(n))}>
                {n}
              </button>
            ))}
            {namespaces.length > 10 && (
              <select aria-label="more namespaces" value={ns && !namespaces.slice(0, 10).includes(ns) ? ns : ''} onChange={(e) => set('ns', e.target.value ? quote(e.target.value) : undefined)}>
                <option value="">more…</option>
                {namespaces.slice(10).map((n) => (
                  <option key={n}>{n}</option>
                ))}
              </select>
            )}
          </div>
        )}
      </div>
      <Select label="Service" value={svc} options={svcList.data ?? []} onChange={(v) => set('svc', v === undefined ? undefined : quote(v))} />
      <Select label="Route" value={route} options={routeList.data ?? []} onChange={(v) => set('route', v === undefined ? undefined : quote(v))} />
      <Select label="Status" value={status} options={['error', 'ok', 'unset']} onChange={(v) => set('status', v)} />
      <DurInput label="Min duration" value={min} onChange={(v) => set('min', v)} />
      <DurInput label="Max duration" value={max} onChange={(v) => set('max', v)} />
      <div className="filter">
        <span className="filter-label">Time</span>
        <div className="chips">
          {RANGES.map(([label, since]) => (
            <button
              key={label}
              type="button"
              className={`chip ${!s.range.start && s.range.since === since ? 'on' : ''}`}
              aria-pressed={!s.range.start && s.range.since === since}
              onClick={() => go({ range: { since }, sel: undefined })}
            >
              {label}
            </button>
          ))}
          {s.range.start && <span className="chip on">{time(s.range.start)} – {s.range.end ? time(s.range.end) : 'now'}</span>}
        </div>
      </div>
    </div>
  );
}

function Select({ label, value, options, onChange }: { label: string; value: string | undefined; options: string[]; onChange(v: string | undefined): void }) {
  const all = value && !options.includes(value) ? [value, ...options] : options;
  return (
    <label className="filter">
      <span className="filter-label">{label}</span>
      <select aria-label={label} value={value ?? ''} onChange={(e) => onChange(e.target.value || undefined)}>
        <option value="">any</option>
        {all.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    </label>
  );
}

function DurInput({ label, value, onChange }: { label: string; value: string | undefined; onChange(v: string | undefined): void }) {
  const [text, setText] = useState(value ?? '');
  useEffect(() => setText(value ?? ''), [value]);
  const bad = text.trim() !== '' && parseDur(text) === undefined;
  const commit = () => {
    if (bad) return;
    const t = text.trim();
    if ((t || undefined) !== value) onChange(t || undefined);
  };
  return (
    <label className="filter">
      <span className="filter-label">{label}</span>
      <input
        aria-label={label}
        className={`dur ${bad ? 'bad' : ''}`}
        placeholder="e.g. 100ms"
        value={text}
        title={bad ? 'a duration such as 250ms, 1.5s, 2m' : undefined}
        onChange={(e) => setText(e.target.value)}
        onBlur={commit}
        onKeyDown={(e) => e.key === 'Enter' && commit()}
      />
    </label>
  );
}

type Res = ReturnType<typeof useLoad<Awaited<ReturnType<typeof searchTraces>>>>;

function Results({ s, res, total, go, onRetry }: { s: SearchState; res: Res; total: number | undefined; go(next: Partial<SearchState>): void; onRetry(): void }) {
  const data = res.data;
  const maxDur = useMemo(() => Math.max(1, ...(data?.traces ?? []).map((t) => t.top.durationNs)), [data]);
  const tbody = useRef<HTMLTableSectionElement>(null);
  return (
    <section className="results" aria-label="traces" aria-busy={res.state === 'loading'}>
      <div className="results-head">
        <h2>
          {data && total !== undefined ? (
            <>
              <span data-testid="total">{count(total)}</span> trace{total === 1 ? '' : 's'}
              {s.sel ? ' in the selection' : ''}
            </>
          ) : data ? (
            <>
              Traces{s.sel ? ' in the selection' : ''} <span className="muted small">counting…</span>
            </>
          ) : (
            'Traces'
          )}
        </h2>
        {res.state === 'loading' && <span className="spinner" role="status" aria-label="loading" />}
        <div className="sort">
          Sort:
          <button type="button" className={`chip ${s.order === 'start' ? 'on' : ''}`} aria-pressed={s.order === 'start'} onClick={() => go({ order: 'start', offset: 0, sel: s.sel })}>
            Newest
          </button>
          <button type="button" className={`chip ${s.order === 'duration' ? 'on' : ''}`} aria-pressed={s.order === 'duration'} onClick={() => go({ order: 'duration', offset: 0, sel: s.sel })}>
            Slowest
          </button>
        </div>
      </div>
      {res.state === 'error' && <Failed error={res.error} retry={onRetry} />}
      {res.state === 'loading' && !data && <Loading what="traces" />}
      {data && data.traces.length === 0 && res.state !== 'error' && (
        <Empty title="No traces match">
          Widen the time range, remove a filter, or check that traffic is flowing (<a href="/services" onClick={onLink}>Services</a>).
        </Empty>
      )}
      {data && data.traces.length > 0 && (
        <>
          <table className="traces">
            <thead>
              <tr>
                <th>Started</th>
                <th>Root service</th>
                <th>Trace</th>
                <th>Slowest match</th>
                <th className="num">
                  <button type="button" className="th-sort" onClick={() => go({ order: s.order === 'duration' ? 'start' : 'duration', offset: 0, sel: s.sel })}>
                    Duration {s.order === 'duration' ? '▼' : ''}
                  </button>
                </th>
                <th className="num">Spans</th>
                <th className="num">Errors</th>
              </tr>
            </thead>
            <tbody ref={tbody}>
              {data.traces.map((t) => (
                <TraceLine key={t.traceId} t={t} maxDur={maxDur} />
              ))}
            </tbody>
          </table>
          <div className="pager">
            <button type="button" disabled={s.offset === 0} onClick={() => go({ offset: Math.max(0, s.offset - PAGE), order: s.order, sel: s.sel })}>
              ← Newer
            </button>
            <span>
              {count(s.offset + 1)}–{count(s.offset + data.traces.length)}
              {total !== undefined ? ` of ${count(total)}` : ''}
            </span>
            <button type="button" disabled={!data.more} onClick={() => go({ offset: s.offset + PAGE, order: s.order, sel: s.sel })}>
              {s.order === 'duration' ? 'Faster' : 'Older'} →
            </button>
          </div>
        </>
      )}
    </section>
  );
}

function TraceLine({ t, maxDur }: { t: TraceRow; maxDur: number }) {
  const link = href(`/trace/${t.traceId}`, { span: t.top.spanId });
  return (
    <tr className={t.errorCount ? 'has-error' : ''} onClick={(e) => !(e.target as HTMLElement).closest('a') && navigate(link)}>
      <td title={time(t.startNs)}>{ago(t.startNs)}</td>
      <td>
        <span className="svc">{t.rootService}</span>
      </td>
      <td>
        <a href={link} onClick={onLink} className="trace-link">
          {t.rootName || '(no root)'}
        </a>
        <span className="muted mono small"> {t.traceId.slice(0, 8)}</span>
      </td>
      <td>
        <span className="svc">{t.top.service}</span> {t.top.name}
      </td>
      <td className="num">
        <div className="durbar">
          <div style={{ width: `${(100 * t.top.durationNs) / maxDur}%` }} />
          <span>{dur(t.top.durationNs)}</span>
        </div>
        {t.durationNs > t.top.durationNs * 1.05 && <div className="muted small">trace {dur(t.durationNs)}</div>}
      </td>
      <td className="num">{t.spanCount}</td>
      <td className="num">{t.errorCount ? <span className="err-badge">{t.errorCount}</span> : <span className="muted">0</span>}</td>
    </tr>
  );
}
