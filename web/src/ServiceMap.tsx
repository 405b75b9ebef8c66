// Service map: who calls whom, laid out by ELK's layered algorithm (elkjs), each edge
// labelled with its rate, error share and p95; click an edge for the traces over it,
// a node for the service's slowest requests.
import ELK, { type ElkNode } from 'elkjs/lib/elk.bundled.js';
import { useEffect, useMemo, useState } from 'react';
import { getEdges, getServices, type Edge, type Service } from './api';
import { dur, pct, rate } from './format';
import { useLoad } from './hooks';
import { navigate } from './router';
import { searchHref } from './Search';
import { inNamespace, NamespaceChips, rangeOf, slowTracesHref, useNamespaces } from './Services';
import { Empty, Failed, Loading } from './states';
import { parseDur, quote } from './traceql';

const elk = new ELK();
const NODE_W = 170;
const NODE_H = 54;

interface Laid {
  nodes: { id: string; x: number; y: number; svc?: Service }[];
  edges: { e: Edge; points: { x: number; y: number }[]; label: { x: number; y: number } }[];
  width: number;
  height: number;
}

/** the search for the calls over an edge: the callee's server spans (narrowed to the caller's calls by `edge`) */
export function edgeSearch(e: Edge): { q: string; edge?: string } {
  if (e.connectionType === 'virtual_node' && e.caller === 'user') return { q: `{ resource.service.name = ${quote(e.callee)} && kind = server }` };
  // a call to an untraced peer or a database: the caller's client spans
  if (e.connectionType === 'virtual_node' || e.connectionType === 'database') return { q: `{ resource.service.name = ${quote(e.caller)} && kind = client }` };
  return { q: `{ resource.service.name = ${quote(e.callee)} && kind = server }`, edge: `${e.caller}>${e.callee}` };
}

export function ServiceMap({ params }: { params: URLSearchParams }) {
  const range = rangeOf(params);
  const ns = params.get('ns') ?? undefined;
  const key = JSON.stringify(range);
  const edges = useLoad(key, (signal) => getEdges(range, signal));
  const services = useLoad(key, (signal) => getServices(range, signal));
  const nsRes = useNamespaces();
  const only = inNamespace(nsRes.data, ns);
  const shown = useMemo(() => (edges.data ?? []).filter((e) => !only || only.has(e.caller) || only.has(e.callee)), [edges.data, only]);
  const [laid, setLaid] = useState<Laid | undefined>();
  const [layoutError, setLayoutError] = useState<Error | undefined>();
  // edges are counts in the window; the services API knows how much of it was observed
  // (osprey may have started within it): take its seconds so both rates agree
  const svc0 = services.data?.find((s) => s.ratePerSec > 0);
  const seconds = svc0 ? svc0.requestCount / svc0.ratePerSec : (parseDur(range.since ?? '1h') ?? 3600e9) / 1e9;

  useEffect(() => {
    if (!edges.data) return;
    const ids = [...new Set(shown.flatMap((e) => [e.caller, e.callee]))];
    const graph: ElkNode = {
      id: 'root',
      layoutOptions: {
        'elk.algorithm': 'layered',
        'elk.direction': 'RIGHT',
        'elk.spacing.nodeNode': '40',
        'elk.layered.spacing.nodeNodeBetweenLayers': '140',
        'elk.edgeRouting': 'SPLINES',
        'elk.spacing.edgeLabel': '4',
      },
      children: ids.map((id) => ({ id, width: NODE_W, height: NODE_H })),
      edges: shown.map((e, i) => ({ id: `e${i}`, sources: [e.caller], targets: [e.callee], labels: [{ text: 'x', width: 150, height: 30 }] })),
    };
    let live = true;
    elk.layout(graph).then(
      (g) => {
        if (!live) return;
        const svcs = new Map((services.data ?? []).map((s) => [s.service, s]));
        setLaid({
          nodes: (g.children ?? []).map((n) => ({ id: n.id, x: n.x ?? 0, y: n.y ?? 0, svc: svcs.get(n.id) })),
          edges: ((g.edges ?? [])).map((le, i) => {
            const sec = le.sections?.[0];
            const points = sec ? [sec.startPoint, ...(sec.bendPoints ?? []), sec.endPoint] : [];
            const lab = le.labels?.[0];
            return { e: shown[i]!, points, label: { x: (lab?.x ?? 0) + 75, y: (lab?.y ?? 0) + 15 } };
          }),
          width: (g.width ?? 400) + 20,
          height: (g.height ?? 200) + 20,
        });
      },
      (e: Error) => live && setLayoutError(e),
    );
    return () => {
      live = false;
    };
  }, [shown, edges.data, services.data]);

  const err = edges.state === 'error' ? edges.error : layoutError;
  return (
    <div className="view map">
      <NamespaceChips path="/map" params={params} pairs={nsRes.data} />
      {err && <Failed error={err} />}
      {!laid && !err && <Loading what="service map" />}
      {laid && laid.edges.length === 0 && <Empty title="No calls between services yet">Edges appear once a traced service calls another.</Empty>}
      {laid && laid.edges.length > 0 && (
        <div className="map-wrap">
          <svg width={laid.width} height={laid.height} viewBox={`-10 -10 ${laid.width} ${laid.height}`} role="img" aria-label="service map" data-testid="service-map">
            <defs>
              <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                <path d="M 0 0 L 10 5 L 0 10 z" className="arrow" />
              </marker>
            </defs>
            {laid.edges.map(({ e, points, label }) => {
              const open = () => navigate(searchHref({ ...edgeSearch(e), range, order: 'duration' }));
              const d = points.map((p, i) => `${i ? 'L' : 'M'} ${p.x} ${p.y}`).join(' ');
              return (
                <g key={`${e.caller}>${e.callee}>${e.connectionType}`} className={`edge ${e.errorPct >= 1 ? 'edge-err' : ''}`} onClick={open} data-edge={`${e.caller}->${e.callee}`} role="link" aria-label={`${e.caller} to ${e.callee}`}>
                  <path d={d} className="edge-hit" />
                  <path d={d} className="edge-line" markerEnd="url(#arrow)" style={{ strokeWidth: 1 + Math.min(5, Math.log10(1 + e.count)) }} />
                  <text x={label.x} y={label.y - 4} className="edge-label">
                    {rate(e.count / seconds)} · {pct(e.errorPct)} err
                  </text>
                  <text x={label.x} y={label.y + 10} className="edge-label muted">
                    p95 {dur(e.p95Ns)}
                  </text>
                </g>
              );
            })}
            {laid.nodes.map((n) => (
              <g key={n.id} className={`node ${n.svc && n.svc.errorPct >= 1 ? 'node-err' : ''}`} transform={`translate(${n.x},${n.y})`} onClick={() => navigate(slowTracesHref(n.id, range))} data-node={n.id}>
                <rect width={NODE_W} height={NODE_H} rx={8} />
                <text x={NODE_W / 2} y={22} className="node-name">
                  {n.id.length > 22 ? `${n.id.slice(0, 21)}…` : n.id}
                </text>
                <text x={NODE_W / 2} y={40} className="node-stats">
                  {n.svc ? `${rate(n.svc.ratePerSec)} · ${pct(n.svc.errorPct)} · p95 ${dur(n.svc.p95Ns)}` : 'not traced as a server'}
                </text>
              </g>
            ))}
          </svg>
        </div>
      )}
      {services.state === 'error' && <Failed error={services.error} />}
    </div>
  );
}
