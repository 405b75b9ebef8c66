// This trace next to a typical one of the same root (same service and span name, the peer
// whose duration is nearest the median): exclusive time per service side by side, so "which
// service made this one slow" reads off one table.
import { getTypical, type ServiceTime } from './api';
import { dur } from './format';
import { useLoad } from './hooks';
import { href, onLink } from './router';
import { Failed } from './states';

export function TypicalCompare({ id }: { id: string }) {
  const res = useLoad(`typical:${id}`, (signal) => getTypical(id, signal), 'secondary');
  if (res.state === 'error') return <Failed error={res.error} />;
  const t = res.data;
  if (!t) return <section className="typical muted small" aria-busy="true">Finding a typical trace of this request…</section>;
  if (!t.typical) {
    return (
      <section className="typical" data-testid="typical">
        <h2>Compared with a typical trace</h2>
        <p className="muted small">
          No other trace with the root <span className="svc">{t.root.service}</span> {t.root.name} within an hour of this one.
        </p>
      </section>
    );
  }
  const mine = new Map(t.trace.services.map((s) => [s.service, s]));
  const theirs = new Map(t.typical.services.map((s) => [s.service, s]));
  const names = [...new Set([...mine.keys(), ...theirs.keys()])];
  const rows = names
    .map((service) => ({ service, a: mine.get(service), b: theirs.get(service) }))
    .sort((x, y) => diff(y.a, y.b) - diff(x.a, x.b) || x.service.localeCompare(y.service));
  const max = Math.max(1, ...rows.flatMap((r) => [r.a?.selfNs ?? 0, r.b?.selfNs ?? 0]));
  return (
    <section className="typical" data-testid="typical" aria-label="compared with a typical trace">
      <h2>
        Compared with a typical trace{' '}
        <span className="muted small">
          of <span className="svc">{t.root.service}</span> {t.root.name}: median {dur(t.medianNs ?? 0)} over {t.peers} trace{t.peers === 1 ? '' : 's'} within an hour;{' '}
          <a href={href(`/trace/${t.typical.traceId}`, {})} onClick={onLink} data-testid="typical-link">
            the typical one
          </a>{' '}
          took {dur(t.typical.durationNs)}, this one {dur(t.trace.durationNs)}
        </span>
      </h2>
      <table className="typical-table">
        <thead>
          <tr>
            <th>Service</th>
            <th className="num">This trace</th>
            <th className="num">Typical</th>
            <th className="num">Difference</th>
            <th className="bars" aria-label="side by side" />
          </tr>
        </thead>
        <tbody>
          {rows.map(({ service, a, b }) => {
            const d = diff(a, b);
            return (
              <tr key={service} data-service={service}>
                <td>
                  <span className="svc">{service}</span>
                </td>
                <td className="num">{a ? dur(a.selfNs) : '—'}</td>
                <td className="num">{b ? dur(b.selfNs) : '—'}</td>
                <td className={`num ${d > 0 ? 'worse' : ''}`}>{d === 0 ? '0' : `${d > 0 ? '+' : '−'}${dur(Math.abs(d))}`}</td>
                <td className="bars">
                  <div className="pair">
                    <div className="bar-this" style={{ width: `${(100 * (a?.selfNs ?? 0)) / max}%` }} title={`this trace: ${dur(a?.selfNs ?? 0)}`} />
                    <div className="bar-typical" style={{ width: `${(100 * (b?.selfNs ?? 0)) / max}%` }} title={`typical: ${dur(b?.selfNs ?? 0)}`} />
                  </div>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <p className="muted small">Time per service is exclusive: a span's duration less the part its child spans cover.</p>
    </section>
  );
}

function diff(a: ServiceTime | undefined, b: ServiceTime | undefined): number {
  return (a?.selfNs ?? 0) - (b?.selfNs ?? 0);
}
