// Trace: a virtualized waterfall (only the rows on screen are in the DOM, so 10k spans
// scroll as smoothly as 10), a collapsible tree, the critical path, errors, and on every
// span how its parent was found (osprey.link). Click a span for its details.
import { useEffect, useMemo, useRef, useState } from 'react';
import { getTrace, type SpanJson } from './api';
import { dur, time } from './format';
import { useLoad } from './hooks';
import { href, navigate } from './router';
import { searchHref } from './Search';
import { Empty, Failed, Loading } from './states';
import { TypicalCompare } from './TypicalCompare';
import { buildTrace, LINKS, visibleRows, type Node, type TraceModel } from './trace-model';
import { quote } from './traceql';

const ROW = 26;

export function TraceView({ id, params }: { id: string; params: URLSearchParams }) {
  const res = useLoad(id, (signal) => getTrace(id, signal));
  const model = useMemo(() => (res.data && res.data.length ? buildTrace(res.data) : undefined), [res.data]);
  const selected = params.get('span') ?? undefined;
  if (res.state === 'error') {
    return (
      <div className="view">
        <Failed error={res.error.message.includes('not found') ? Object.assign(new Error(`Trace ${id} is not stored`), { hint: 'it may have aged out of retention, or the id is mistyped' }) : res.error} />
      </div>
    );
  }
  if (!model) return <div className="view">{res.state === 'loading' ? <Loading what="trace" /> : <Empty title="This trace has no spans" />}</div>;
  return <Waterfall key={id} id={id} model={model} selected={selected} />;
}

function Waterfall({ id, model, selected }: { id: string; model: TraceModel; selected?: string }) {
  const [collapsed, setCollapsed] = useState<Set<string>>(() => new Set());
  const rows = useMemo(() => visibleRows(model, collapsed), [model, collapsed]);
  const scroller = useRef<HTMLDivElement>(null);
  const [view, setView] = useState({ top: 0, height: 600 });
  const [copied, setCopied] = useState(false);
  const select = (spanId: string | undefined) => navigate(href(`/trace/${id}`, { span: spanId }), { replace: true });

  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const on = () => setView({ top: el.scrollTop, height: el.clientHeight });
    on();
    el.addEventListener('scroll', on, { passive: true });
    const ro = new ResizeObserver(on);
    ro.observe(el);
    return () => {
      el.removeEventListener('scroll', on);
      ro.disconnect();
    };
  }, []);
  // bring the selected span (from a deep link or the search list) into view once
  useEffect(() => {
    if (!selected || !scroller.current) return;
    const i = rows.findIndex((r) => r.id === selected);
    if (i >= 0 && (i * ROW < scroller.current.scrollTop || i * ROW > scroller.current.scrollTop + scroller.current.clientHeight - ROW)) {
      scroller.current.scrollTop = Math.max(0, i * ROW - scroller.current.clientHeight / 3);
    }
    // only when the selection changes, not on every expand/collapse
  }, [selected]);

  const first = Math.max(0, Math.floor(view.top / ROW) - 10);
  const last = Math.min(rows.length, Math.ceil((view.top + view.height) / ROW) + 10);
  const root = model.roots[0]!;
  const sel = selected ? model.byId.get(selected) : undefined;
  const toggle = (n: Node) =>
    setCollapsed((c) => {
      const next = new Set(c);
      if (next.has(n.id)) next.delete(n.id);
      else next.add(n.id);
      return next;
    });

  return (
    <div className="view trace">
      <header className="trace-head">
        <h1>
          <span className="svc">{root.service}</span> {root.span.name}
        </h1>
        <div className="trace-meta">
          <span>
            Trace{' '}
            <code className="mono" data-testid="trace-id">
              {id}
            </code>
            <button
              type="button"
              className="icon"
              title="copy the trace id"
              onClick={() => {
                void navigator.clipboard?.writeText(id).then(() => setCopied(true));
                setTimeout(() => setCopied(false), 1500);
              }}
            >
              {copied ? '✓ copied' : 'copy'}
            </button>
          </span>
          <span>{time(model.t0)}</span>
          <span>
            <strong>{dur(model.durationNs)}</strong>
          </span>
          <span>{model.byId.size} spans</span>
          <span>{model.services.length} services</span>
          {model.errors > 0 && <span className="err-badge">{model.errors} error{model.errors > 1 ? 's' : ''}</span>}
          <span className="legend">
            <span className="crit-swatch" /> critical path
          </span>
          <span className="legend">parent found by:</span>
          {Object.entries(LINKS).map(([k, v]) => (
            <span key={k} className={`link-badge link-${k}`} title={v.title}>
              {v.label}
            </span>
          ))}
          <button type="button" onClick={() => setCollapsed(new Set())}>
            Expand all
          </button>
          <button type="button" onClick={() => document.querySelector('[data-testid=typical]')?.scrollIntoView({ behavior: 'smooth' })}>
            vs typical ↓
          </button>
        </div>
      </header>
      <div className="trace-body">
        <div className="waterfall" role="tree" aria-label="spans">
          <div className="wf-header">
            <div className="wf-left">Service · span</div>
            <div className="wf-right">
              <TimeTicks total={model.durationNs} />
            </div>
          </div>
          <div className="wf-scroll" ref={scroller} data-testid="waterfall">
            <div style={{ height: rows.length * ROW, position: 'relative' }}>
              {rows.slice(first, last).map((n, i) => (
                <SpanRow key={n.id} n={n} top={(first + i) * ROW} total={model.durationNs} selected={n.id === selected} collapsed={collapsed.has(n.id)} onToggle={toggle} onSelect={select} />
              ))}
            </div>
          </div>
        </div>
        {sel && <SpanDetails n={sel} model={model} onClose={() => select(undefined)} />}
      </div>
      <TypicalCompare id={id} />
    </div>
  );
}

function TimeTicks({ total }: { total: number }) {
  return (
    <>
      {[0, 0.25, 0.5, 0.75].map((f) => (
        <span key={f} className="tick" style={{ left: `${f * 100}%` }}>
          {dur(total * f)}
        </span>
      ))}
      <span className="tick end">{dur(total)}</span>
    </>
  );
}

function SpanRow({ n, top, total, selected, collapsed, onToggle, onSelect }: { n: Node; top: number; total: number; selected: boolean; collapsed: boolean; onToggle(n: Node): void; onSelect(id: string): void }) {
  const s = n.span;
  const link = String(s.attributes['osprey.link'] ?? (n.parent ? '' : 'none'));
  const info = LINKS[link];
  const left = total ? (n.start / total) * 100 : 0;
  const width = total ? Math.max(0.2, (s.durationNano / total) * 100) : 100;
  const status = s.attributes['http.response.status_code'];
  return (
    <div
      role="treeitem"
      aria-selected={selected}
      aria-expanded={n.children.length ? !collapsed : undefined}
      aria-level={n.depth + 1}
      data-span-id={n.id}
      className={`wf-row ${selected ? 'selected' : ''} ${s.status === 'error' ? 'error' : ''} ${n.critical ? 'critical' : ''}`}
      style={{ top, height: ROW }}
      onClick={() => onSelect(n.id)}
    >
      <div className="wf-left" style={{ paddingLeft: 6 + n.depth * 14 }}>
        {n.children.length ? (
          <button
            type="button"
            className="toggle"
            aria-label={collapsed ? 'expand' : 'collapse'}
            onClick={(e) => {
              e.stopPropagation();
              onToggle(n);
            }}
          >
            {collapsed ? '▸' : '▾'}
            {collapsed && <span className="muted small">{n.children.length}</span>}
          </button>
        ) : (
          <span className="toggle-space" />
        )}
        {n.orphan ? (
          <span className="link-badge link-missing" title="its parent span is not stored (the caller is not traced, or its span aged out)">
            parent?
          </span>
        ) : info ? (
          <span className={`link-badge link-${link}`} title={info.title} data-testid="link-badge">
            {info.label}
          </span>
        ) : (
          link && <span className="link-badge">{link}</span>
        )}
        <span className={`kind kind-${s.kind}`}>{s.kind === 'server' ? 'S' : s.kind === 'client' ? 'C' : s.kind[0]?.toUpperCase()}</span>
        <span className="svc">{n.service}</span>
        <span className="span-name">{s.name}</span>
        {status !== undefined && <span className={`http-status ${Number(status) >= 400 ? 'bad' : ''}`}>{String(status)}</span>}
        {s.status === 'error' && <span className="err-dot" title="error" />}
      </div>
      <div className="wf-right">
        <div className={`bar kind-${s.kind}`} style={{ left: `${left}%`, width: `${width}%` }} />
        <span className="bar-label" style={left > 70 ? { right: `${100 - left + 0.5}%` } : { left: `calc(${left + width}% + 4px)` }}>
          {dur(s.durationNano)}
        </span>
      </div>
    </div>
  );
}

function SpanDetails({ n, model, onClose }: { n: Node; model: TraceModel; onClose(): void }) {
  const s = n.span;
  const link = String(s.attributes['osprey.link'] ?? '');
  const res = Object.entries(s.resource);
  const k8s = res.filter(([k]) => k.startsWith('k8s.'));
  const other = res.filter(([k]) => !k.startsWith('k8s.'));
  const selfNs = s.durationNano - n.children.reduce((a, c) => a + c.span.durationNano, 0);
  return (
    <aside className="details" aria-label="span details" data-testid="span-details">
      <div className="details-head">
        <h2>{s.name}</h2>
        <button type="button" className="icon" onClick={onClose} aria-label="close details">
          ✕
        </button>
      </div>
      <dl className="kv">
        <dt>Service</dt>
        <dd>
          <a href={searchHref({ q: `{ resource.service.name = ${quote(n.service)} }`, order: 'duration' })} onClick={(e) => (e.preventDefault(), navigate(searchHref({ q: `{ resource.service.name = ${quote(n.service)} }`, order: 'duration' })))}>
            {n.service}
          </a>
        </dd>
        <dt>Kind</dt>
        <dd>{s.kind}</dd>
        <dt>Status</dt>
        <dd className={s.status === 'error' ? 'err' : ''}>
          {s.status}
          {s.statusMessage ? ` — ${s.statusMessage}` : ''}
        </dd>
        <dt>Duration</dt>
        <dd>
          {dur(s.durationNano)} <span className="muted">(self {dur(Math.max(0, selfNs))}, starts at +{dur(n.start)})</span>
        </dd>
        <dt>Span id</dt>
        <dd className="mono">{s.spanId}</dd>
        <dt>Parent</dt>
        <dd>
          {n.parent ? (
            <>
              <span className="mono">{s.parentSpanId}</span> ({n.parent.service})
            </>
          ) : n.orphan ? (
            <>
              <span className="mono">{s.parentSpanId}</span> — not stored
            </>
          ) : (
            'none (root)'
          )}
        </dd>
        <dt>Parent found by</dt>
        <dd>
          <span className={`link-badge link-${link || 'none'}`}>{LINKS[link]?.label ?? (link || 'root')}</span> {LINKS[link]?.title ?? ''}
        </dd>
        <dt>On critical path</dt>
        <dd>{n.critical ? 'yes' : 'no'}</dd>
      </dl>
      <Attrs title="Attributes" entries={Object.entries(s.attributes)} />
      {k8s.length > 0 && <Attrs title="Kubernetes" entries={k8s} />}
      <Attrs title="Resource" entries={other} />
      <p className="muted small">{model.byId.size} spans in this trace</p>
    </aside>
  );
}

function Attrs({ title, entries }: { title: string; entries: [string, SpanJson['attributes'][string]][] }) {
  if (!entries.length) return null;
  return (
    <>
      <h3>{title}</h3>
      <dl className="kv attrs">
        {entries
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([k, v]) => (
            <div key={k} className="kv-row">
              <dt title={k}>{k}</dt>
              <dd className="mono">{String(v)}</dd>
            </div>
          ))}
      </dl>
    </>
  );
}
