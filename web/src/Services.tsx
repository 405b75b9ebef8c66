// Services: rate, errors and latency per service, filtered by namespace; a click opens
// that service's slowest requests.
import { useMemo } from 'react';
import { getServiceNamespaces, getServices, type Range, type Service } from './api';
import { dur, pct, rate } from './format';
import { useLoad } from './hooks';
import { href, navigate } from './router';
import { RANGES, searchHref } from './Search';
import { Empty, Failed, Loading } from './states';
import { quote } from './traceql';

type SortKey = 'service' | 'ratePerSec' | 'errorPct' | 'p50Ns' | 'p95Ns' | 'p99Ns';

export function rangeOf(p: URLSearchParams): Range {
  return { since: p.get('since') ?? '1h' };
}

export function useNamespaces() {
  return useLoad('namespaces', (signal) => getServiceNamespaces(signal));
}

/** the services of a namespace (undefined: all) */
export function inNamespace(pairs: { service: string; namespace: string }[] | undefined, ns: string | undefined): Set<string> | undefined {
  if (!ns || !pairs) return undefined;
  return new Set(pairs.filter((p) => p.namespace === ns).map((p) => p.service));
}

export function slowTracesHref(service: string, range: Range, extra = ''): string {
  return searchHref({ q: `{ resource.service.name = ${quote(service)} && kind = server${extra} }`, range, order: 'duration' });
}

export function NamespaceChips({ path, params, pairs }: { path: string; params: URLSearchParams; pairs?: { namespace: string }[] }) {
  const list = [...new Set((pairs ?? []).map((p) => p.namespace))].sort();
  const ns = params.get('ns') ?? undefined;
  const since = params.get('since') ?? '1h';
  return (
    <div className="filters">
      <div className="filter">
        <span className="filter-label">Namespace</span>
        <div className="chips">
          <button type="button" className={`chip ${!ns ? 'on' : ''}`} onClick={() => navigate(href(path, { since: since === '1h' ? undefined : since }))}>
            all
          </button>
          {list.map((n) => (
            <button key={n} type="button" className={`chip ${ns === n ? 'on' : ''}`} aria-pressed={ns === n} onClick={() => navigate(href(path, { ns: n, since: since === '1h' ? undefined : since }))}>
              {n}
            </button>
          ))}
          {list.length === 0 && <span className="muted">none seen (no Kubernetes metadata)</span>}
        </div>
      </div>
      <div className="filter">
        <span className="filter-label">Time</span>
        <div className="chips">
          {RANGES.map(([label, s]) => (
            <button key={label} type="button" className={`chip ${since === s ? 'on' : ''}`} onClick={() => navigate(href(path, { ns, since: s === '1h' ? undefined : s }))}>
              {label}
            </button>
          ))}
        </div>
      </div>
    </div>
  );
}

export function Services({ params }: { params: URLSearchParams }) {
  const range = rangeOf(params);
  const ns = params.get('ns') ?? undefined;
  const sort = (params.get('sort') as SortKey | null) ?? 'p95Ns';
  const res = useLoad(JSON.stringify(range), (signal) => getServices(range, signal));
  const nsRes = useNamespaces();
  const only = inNamespace(nsRes.data, ns);
  const rows = useMemo(() => {
    const list = (res.data ?? []).filter((s) => !only || only.has(s.service));
    return list.sort((a, b) => (sort === 'service' ? a.service.localeCompare(b.service) : (b[sort]) - (a[sort])));
  }, [res.data, only, sort]);
  const th = (key: SortKey, label: string, num = true) => (
    <th className={num ? 'num' : ''}>
      <button type="button" className="th-sort" onClick={() => navigate(href('/services', { ns, since: params.get('since'), sort: key }), { replace: true })}>
        {label} {sort === key ? '▼' : ''}
      </button>
    </th>
  );
  return (
    <div className="view services">
      <NamespaceChips path="/services" params={params} pairs={nsRes.data} />
      {res.state === 'error' && <Failed error={res.error} />}
      {res.state === 'loading' && !res.data && <Loading what="services" />}
      {res.data && rows.length === 0 && <Empty title={ns ? `No traffic in namespace ${ns}` : 'No services seen yet'}>Osprey shows a service once it serves or makes a request.</Empty>}
      {rows.length > 0 && (
        <table className="svc-table">
          <thead>
            <tr>
              {th('service', 'Service', false)}
              {th('ratePerSec', 'Rate')}
              {th('errorPct', 'Errors')}
              {th('p50Ns', 'p50')}
              {th('p95Ns', 'p95')}
              {th('p99Ns', 'p99')}
              <th></th>
            </tr>
          </thead>
          <tbody>
            {rows.map((s) => (
              <ServiceLine key={s.service} s={s} range={range} maxP99={Math.max(...rows.map((r) => r.p99Ns))} />
            ))}
          </tbody>
        </table>
      )}
      <p className="muted small">Figures from {rows[0]?.basis === 'all' ? 'all spans' : 'server spans'} per service; percentiles are estimated from latency buckets.</p>
    </div>
  );
}

function ServiceLine({ s, range, maxP99 }: { s: Service; range: Range; maxP99: number }) {
  const slow = slowTracesHref(s.service, range);
  return (
    <tr onClick={() => navigate(slow)} className="clickable" data-service={s.service}>
      <td>
        <span className="svc">{s.service}</span>
        {s.basis === 'all' && <span className="muted small"> (no server spans)</span>}
      </td>
      <td className="num">{rate(s.ratePerSec)}</td>
      <td className={`num ${s.errorPct >= 1 ? 'err' : ''}`}>{pct(s.errorPct)}</td>
      <td className="num">{dur(s.p50Ns)}</td>
      <td className="num">
        <div className="durbar">
          <div style={{ width: `${(100 * s.p95Ns) / Math.max(1, maxP99)}%` }} />
          <span>{dur(s.p95Ns)}</span>
        </div>
      </td>
      <td className="num">{dur(s.p99Ns)}</td>
      <td>
        <a href={slow} onClick={(e) => (e.preventDefault(), e.stopPropagation(), navigate(slow))}>
          slowest →
        </a>
        {s.errorCount > 0 && (
          <a
            href={slowTracesHref(s.service, range, ' && status = error')}
            className="err-link"
            onClick={(e) => (e.preventDefault(), e.stopPropagation(), navigate(slowTracesHref(s.service, range, ' && status = error')))}
          >
            errors →
          </a>
        )}
      </td>
    </tr>
  );
}
