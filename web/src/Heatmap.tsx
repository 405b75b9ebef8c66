// Latency over time: one column per time step, one row per quarter octave of duration,
// colour by span count (errors in red). Drag a rectangle to select a region: the trace list
// narrows to it and the selection is compared with the rest of the matches.
import { useEffect, useMemo, useRef, useState } from 'react';
import { getComparison, getHeatmap, type Comparison, type Heatmap, type Range } from './api';
import { count, dur, pct, time } from './format';
import { useLoad } from './hooks';
import { Failed } from './states';
import { parseDur } from './traceql';

export interface Selection {
  /** unix ns, decimal strings */
  start: string;
  end: string;
  minNs: number;
  maxNs: number;
}

const H = 180;
const PAD_L = 64;
const PAD_B = 22;

/** the window in unix ns; a `since` range is taken back from now when the query key changes */
export function absRange(r: Range): { start: string; end: string } {
  if (r.start) return { start: r.start, end: r.end ?? String(BigInt(Date.now()) * 1_000_000n) };
  const end = BigInt(Date.now()) * 1_000_000n;
  const back = BigInt(Math.round(parseDur(r.since ?? '1h') ?? 3600e9));
  return { start: String(end - back), end: String(end) };
}

const bucketLow = (h: Heatmap, y: number) => h.baseNs * 2 ** (y / h.perOctave);

export function HeatmapPanel({ q, range, sel, onSelect }: { q: string; range: Range; sel?: Selection; onSelect(s: Selection | undefined): void }) {
  const rangeKey = JSON.stringify(range);
  const win = useMemo(() => absRange(JSON.parse(rangeKey) as Range), [rangeKey]);
  const res = useLoad(JSON.stringify([q, win]), (signal) => getHeatmap({ q, ...win, columns: 120 }, signal), 'secondary');
  const h = res.data;
  return (
    <section className="heat-panel" aria-label="latency heatmap">
      <div className="heat-head">
        <h2>Latency over time</h2>
        <span className="muted small">drag a region to see its traces and what sets them apart</span>
        {sel && (
          <button type="button" className="chip on" onClick={() => onSelect(undefined)}>
            selection {dur(sel.minNs)}–{sel.maxNs >= Number.MAX_SAFE_INTEGER ? '∞' : dur(sel.maxNs)}, {time(sel.start)}–{time(sel.end)} ✕
          </button>
        )}
      </div>
      {res.state === 'error' && <Failed error={res.error} />}
      {h && <HeatCanvas h={h} win={win} sel={sel} onSelect={onSelect} />}
      {!h && res.state === 'loading' && <div className="heat-placeholder" style={{ height: H }} />}
      {sel && <CompareView q={q} win={win} sel={sel} />}
    </section>
  );
}

function HeatCanvas({ h, win, sel, onSelect }: { h: Heatmap; win: { start: string; end: string }; sel?: Selection; onSelect(s: Selection): void }) {
  const ref = useRef<HTMLCanvasElement>(null);
  const wrap = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(800);
  const [drag, setDrag] = useState<{ x0: number; y0: number; x1: number; y1: number } | undefined>();
  useEffect(() => {
    const el = wrap.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setWidth(el.clientWidth));
    ro.observe(el);
    setWidth(el.clientWidth);
    return () => ro.disconnect();
  }, []);

  const ys = h.cells.map((c) => c[1]);
  const yMin = ys.length ? Math.min(...ys) : 12;
  const yMax = ys.length ? Math.max(...ys) + 1 : 40;
  const rows = Math.max(4, yMax - yMin);
  const plotW = Math.max(100, width - PAD_L);
  const plotH = H - PAD_B;
  const cw = plotW / h.columns;
  const ch = plotH / rows;
  const t0 = BigInt(h.startNs);
  const step = BigInt(h.stepNs);

  // pixel <-> (time, duration)
  const xToNs = (x: number) => t0 + (BigInt(Math.round(Math.max(0, x - PAD_L) / cw * 1000)) * step) / 1000n;
  /** the duration bucket (row) under a y pixel */
  const rowAt = (y: number) => yMin + Math.min(rows - 1, Math.max(0, Math.floor((plotH - y) / ch)));
  const nsToX = (ns: bigint) => PAD_L + (Number(ns - t0) / Number(step)) * cw;
  const durToY = (d: number) => plotH - (Math.log2(Math.max(d, 1) / h.baseNs) * h.perOctave - yMin) * ch;

  useEffect(() => {
    const c = ref.current;
    if (!c) return;
    const dpr = window.devicePixelRatio || 1;
    c.width = width * dpr;
    c.height = H * dpr;
    const g = c.getContext('2d')!;
    g.scale(dpr, dpr);
    const css = getComputedStyle(c);
    const fg = css.getPropertyValue('--fg-muted') || '#888';
    g.clearRect(0, 0, width, H);
    const max = Math.max(1, ...h.cells.map((x) => x[2]));
    for (const [x, y, n, e] of h.cells) {
      const a = 0.15 + 0.85 * (Math.log(1 + n) / Math.log(1 + max));
      g.fillStyle = e > 0 ? `rgba(220, 50, 47, ${Math.max(a, 0.5)})` : `rgba(38, 139, 210, ${a})`;
      g.fillRect(PAD_L + x * cw, plotH - (y - yMin + 1) * ch, Math.max(1, cw - 0.5), Math.max(1, ch - 0.5));
    }
    // axes: duration labels every octave, a few time labels
    g.fillStyle = fg;
    g.font = '11px system-ui, sans-serif';
    g.textAlign = 'right';
    for (let y = Math.ceil(yMin / h.perOctave) * h.perOctave; y <= yMin + rows; y += h.perOctave * (rows > 40 ? 2 : 1)) {
      const py = plotH - (y - yMin) * ch;
      g.fillText(dur(bucketLow(h, y)), PAD_L - 6, py + 4);
      g.fillRect(PAD_L - 3, py, 3, 1);
    }
    g.textAlign = 'center';
    for (let i = 0; i <= 4; i++) {
      const x = PAD_L + (plotW * i) / 4;
      g.fillText(time(t0 + (BigInt(Math.round((h.columns * i) / 4)) * step)).replace(/\.\d+$/, ''), Math.min(Math.max(x, PAD_L + 30), width - 30), H - 6);
    }
  }, [h, width, yMin, rows, cw, ch, plotW, plotH, t0, step]);

  const rect = drag
    ? { x: Math.min(drag.x0, drag.x1), y: Math.min(drag.y0, drag.y1), w: Math.abs(drag.x1 - drag.x0), h: Math.abs(drag.y1 - drag.y0) }
    : sel
      ? (() => {
          const x0 = nsToX(BigInt(sel.start));
          const x1 = nsToX(BigInt(sel.end));
          const y0 = sel.maxNs >= Number.MAX_SAFE_INTEGER ? 0 : durToY(sel.maxNs);
          const y1 = durToY(sel.minNs);
          return { x: x0, y: Math.max(0, y0), w: Math.max(2, x1 - x0), h: Math.max(2, Math.min(plotH, y1) - Math.max(0, y0)) };
        })()
      : undefined;

  const pos = (e: React.PointerEvent) => {
    const b = (e.currentTarget as HTMLElement).getBoundingClientRect();
    return { x: Math.min(Math.max(e.clientX - b.left, PAD_L), width), y: Math.min(Math.max(e.clientY - b.top, 0), plotH) };
  };
  return (
    <div
      ref={wrap}
      className="heat"
      data-testid="heatmap"
      style={{ height: H }}
      onPointerDown={(e) => {
        const p = pos(e);
        (e.currentTarget as HTMLElement).setPointerCapture(e.pointerId);
        setDrag({ x0: p.x, y0: p.y, x1: p.x, y1: p.y });
      }}
      onPointerMove={(e) => drag && setDrag({ ...drag, ...(() => { const p = pos(e); return { x1: p.x, y1: p.y }; })() })}
      onPointerUp={() => {
        if (!drag) return;
        setDrag(undefined);
        if (Math.abs(drag.x1 - drag.x0) < 4 && Math.abs(drag.y1 - drag.y0) < 4) return;
        const a = xToNs(Math.min(drag.x0, drag.x1));
        const b = xToNs(Math.max(drag.x0, drag.x1));
        const end = BigInt(win.end);
        const top = Math.min(drag.y0, drag.y1);
        const bottom = Math.max(drag.y0, drag.y1);
        onSelect({
          start: String(a),
          end: String(b > end ? end : b),
          // whole buckets: from the low edge of the bottom one to the high edge of the top one
          minNs: rowAt(bottom) <= yMin ? 0 : Math.floor(bucketLow(h, rowAt(bottom))),
          maxNs: rowAt(top) >= yMax - 1 ? Number.MAX_SAFE_INTEGER : Math.ceil(bucketLow(h, rowAt(top) + 1)),
        });
      }}
    >
      <canvas ref={ref} style={{ width: '100%', height: H }} />
      {rect && <div className="heat-sel" style={{ left: rect.x, top: rect.y, width: rect.w, height: rect.h }} />}
      {h.cells.length === 0 && <div className="heat-empty">no spans in this window</div>}
    </div>
  );
}

/** which values are over-represented in the selection against the rest */
function CompareView({ q, win, sel }: { q: string; win: { start: string; end: string }; sel: Selection }) {
  const res = useLoad(JSON.stringify([q, win, sel]), (signal) =>
    getComparison({ q, ...win, selStart: sel.start, selEnd: sel.end, minNs: sel.minNs, maxNs: Math.min(sel.maxNs, Number.MAX_SAFE_INTEGER) }, signal),
  );
  if (res.state === 'error') return <Failed error={res.error} />;
  const c = res.data;
  if (!c) return <div className="compare muted">Comparing…</div>;
  return (
    <div className="compare" data-testid="comparison">
      <div className="compare-head">
        <strong>{count(c.selected)}</strong> spans selected vs <strong>{count(c.rest)}</strong> others: what the selection has more of
      </div>
      <div className="compare-grid">
        {ranked(c).map((d) => (
          <div key={d.name} className="compare-dim">
            <h3>{d.name}</h3>
            {d.values.map((v) => (
              <div key={v.value} className={`cmp-row ${v.lift > 1.5 && v.selPct > 0.1 ? 'over' : ''}`} title={`selection ${pct(v.selPct * 100)}, rest ${pct(v.restPct * 100)}`}>
                <span className="cmp-value">{v.value}</span>
                <span className="cmp-bars">
                  <span className="bar sel" style={{ width: `${v.selPct * 100}%` }} />
                  <span className="bar rest" style={{ width: `${v.restPct * 100}%` }} />
                </span>
                <span className="cmp-num">
                  {pct(v.selPct * 100)} <span className="muted">vs {pct(v.restPct * 100)}</span>
                </span>
              </div>
            ))}
          </div>
        ))}
      </div>
    </div>
  );
}

function ranked(c: Comparison) {
  return c.dimensions
    .map((d) => {
      const values = d.values
        .map((v) => {
          const selPct = c.selected ? v.selected / c.selected : 0;
          const restPct = c.rest ? v.rest / c.rest : 0;
          return { value: v.value, selPct, restPct, lift: (selPct + 0.001) / (restPct + 0.001) };
        })
        .sort((a, b) => b.selPct - b.restPct - (a.selPct - a.restPct))
        .slice(0, 5);
      const score = Math.max(0, ...values.map((v) => v.selPct - v.restPct));
      return { name: d.name, values, score };
    })
    .filter((d) => d.values.length > 1 || d.score > 0)
    .sort((a, b) => b.score - a.score)
    .slice(0, 6);
}
