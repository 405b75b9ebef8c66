// A trace as a tree: children by start time, roots (no parent, or a parent not stored)
// first by start; self time; the critical path.
import type { SpanJson } from './api';

export interface Node {
  span: SpanJson;
  id: string;
  start: number; // ns from the trace start
  end: number;
  depth: number;
  children: Node[];
  parent?: Node;
  /** the parent span id is set but that span is not in the trace */
  orphan: boolean;
  critical: boolean;
  service: string;
}

export interface TraceModel {
  roots: Node[];
  byId: Map<string, Node>;
  t0: bigint;
  durationNs: number;
  services: string[];
  errors: number;
}

export function buildTrace(spans: SpanJson[]): TraceModel {
  const t0 = spans.reduce((m, s) => (BigInt(s.startTimeUnixNano) < m ? BigInt(s.startTimeUnixNano) : m), BigInt(spans[0]?.startTimeUnixNano ?? '0'));
  const byId = new Map<string, Node>();
  for (const s of spans) {
    const start = Number(BigInt(s.startTimeUnixNano) - t0);
    byId.set(s.spanId, {
      span: s,
      id: s.spanId,
      start,
      end: start + s.durationNano,
      depth: 0,
      children: [],
      orphan: false,
      critical: false,
      service: String(s.resource['service.name'] ?? 'unknown_service'),
    });
  }
  const roots: Node[] = [];
  for (const n of byId.values()) {
    const p = n.span.parentSpanId ? byId.get(n.span.parentSpanId) : undefined;
    if (p && p !== n) {
      n.parent = p;
      p.children.push(n);
    } else {
      n.orphan = !!n.span.parentSpanId;
      roots.push(n);
    }
  }
  const byStart = (a: Node, b: Node) => a.start - b.start || a.id.localeCompare(b.id);
  roots.sort((a, b) => Number(a.orphan) - Number(b.orphan) || byStart(a, b));
  // depth and child order without recursion (deep traces must not blow the stack)
  const stack = [...roots];
  while (stack.length) {
    const n = stack.pop()!;
    n.children.sort(byStart);
    for (const c of n.children) {
      c.depth = n.depth + 1;
      stack.push(c);
    }
  }
  let durationNs = 0;
  for (const n of byId.values()) durationNs = Math.max(durationNs, n.end);
  if (roots[0]) markCritical(roots[0]);
  return {
    roots,
    byId,
    t0,
    durationNs,
    services: [...new Set([...byId.values()].map((n) => n.service))].sort(),
    errors: spans.filter((s) => s.status === 'error').length,
  };
}

/**
 * The critical path: from the end of a span, walk back through the child that finished
 * last before the point reached, then continue from that child's start; each child on the
 * way is followed the same way. What remains is what the span waited on.
 */
function markCritical(root: Node): void {
  const work: { n: Node; until: number }[] = [{ n: root, until: root.end }];
  while (work.length) {
    const { n, until } = work.pop()!;
    n.critical = true;
    let t = Math.min(until, n.end);
    const kids = [...n.children].sort((a, b) => b.end - a.end);
    for (const c of kids) {
      if (c.start >= t) continue;
      if (c.end > t && c.start >= n.start) {
        // overlaps the point reached: it is on the path up to t
        work.push({ n: c, until: t });
        t = c.start;
      } else if (c.end <= t) {
        work.push({ n: c, until: c.end });
        t = c.start;
      }
      if (t <= n.start) break;
    }
  }
}

/** the visible rows: a depth-first walk that skips collapsed subtrees */
export function visibleRows(model: TraceModel, collapsed: Set<string>): Node[] {
  const out: Node[] = [];
  const stack = [...model.roots].reverse();
  while (stack.length) {
    const n = stack.pop()!;
    out.push(n);
    if (!collapsed.has(n.id)) for (let i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i]!);
  }
  return out;
}

/** how a span's parent was found: the agent's `osprey.link` attribute, in words */
export const LINKS: Record<string, { label: string; title: string }> = {
  traceparent: { label: 'header', title: 'parent from the W3C traceparent header in the request (propagated context)' },
  tuple: { label: 'tuple', title: 'parent matched by the connection 4-tuple: the client span whose connection this request arrived on' },
  thread: { label: 'thread', title: 'parent matched by the thread: the call was made on the thread serving exactly one request' },
  runtime: { label: 'runtime', title: 'parent from the runtime context (goroutine / async chain) that made the call' },
  none: { label: 'root', title: 'no parent found: a new trace root' },
};
