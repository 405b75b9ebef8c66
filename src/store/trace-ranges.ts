// Reading a few known traces' spans without scanning the time between them.
//
// A search's traces are known by id once ranked; their spans are then read a second time
// (counts, stats, the picked spans). One `trace_id IN (...)` scan over the smallest window
// holding them all reads the trace_id column of every row group in between: when matches
// are rare the traces lie minutes apart and that window is the whole search window (~100 ms
// at 10M spans, most of a rare-match search). trace_index gives each trace's own start-time
// range; a UNION ALL of one range scan per cluster of overlapping ranges lets the zone maps on
// start_ns skip everything else (~15 ms for 20 traces spread over an hour at 10M spans).
// An OR of the ranges in one WHERE is no substitute: DuckDB does not prune row groups on it
// (measured 6x slower than the single window).

import { LIST, VARCHAR, listValue } from '@duckdb/node-api';
import { Params, windowSql } from './compile.js';
import { uuidHex, type StoreCore } from './core.js';

/** where one trace's spans start: [lo, hi] */
export interface TraceRange {
  lo: bigint;
  hi: bigint;
}

/** a union's branches: beyond this, the closest clusters are merged (one scan each) */
const MAX_BRANCHES = 32;
/**
 * clusters closer than this merge: scanning the gap's start_ns and trace_id columns costs
 * less than another scan (~1 ms for 100k rows, i.e. 10 s at 10k spans/s)
 */
const MIN_GAP_NS = 5_000_000_000n;

/** each trace's start-time range (trace_index); traces without rows are left out */
export async function traceRanges(core: StoreCore, ids: string[]): Promise<Map<string, TraceRange>> {
  const out = new Map<string, TraceRange>();
  if (ids.length === 0) return out;
  const P = new Params();
  const rows = await core.query(
    `SELECT trace_id, min(min_ns), max(max_ns) FROM trace_index
     WHERE trace_id IN (SELECT CAST(unnest(${P.add(listValue(ids), LIST(VARCHAR))}) AS UUID)) GROUP BY trace_id`,
    P,
  );
  for (const [tid, lo, hi] of rows) if (typeof lo === 'bigint' && typeof hi === 'bigint') out.set(uuidHex(tid), { lo, hi });
  return out;
}

interface Cluster extends TraceRange {
  ids: string[];
}

/**
 * The ranges grouped into at most `max` time-disjoint clusters: overlapping ones and ones
 * less than `minGap` apart always merge, and past `max` the ones separated by the smallest
 * gaps. Ranges are clipped to
 * [startNs, endNs] first; a trace entirely outside is left out.
 */
export function clusters(ranges: Iterable<[string, TraceRange]>, startNs?: bigint, endNs?: bigint, max = MAX_BRANCHES, minGap = MIN_GAP_NS): Cluster[] {
  const rs: Cluster[] = [];
  for (const [id, r] of ranges) {
    const lo = startNs !== undefined && startNs > r.lo ? startNs : r.lo;
    const hi = endNs !== undefined && endNs < r.hi ? endNs : r.hi;
    if (lo <= hi) rs.push({ ids: [id], lo, hi });
  }
  rs.sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
  const merged: Cluster[] = [];
  for (const r of rs) {
    const last = merged[merged.length - 1];
    if (last && r.lo <= last.hi + minGap) {
      last.ids.push(...r.ids);
      if (r.hi > last.hi) last.hi = r.hi;
    } else merged.push(r);
  }
  if (merged.length <= max) return merged;
  // keep the max-1 widest gaps as the boundaries, merge across the others
  const gaps = merged.slice(1).map((c, i) => ({ i: i + 1, gap: c.lo - (merged[i] as Cluster).hi }));
  gaps.sort((a, b) => (a.gap > b.gap ? -1 : a.gap < b.gap ? 1 : a.i - b.i));
  const cut = new Set(gaps.slice(0, max - 1).map((g) => g.i));
  const out: Cluster[] = [];
  merged.forEach((c, i) => {
    const last = out[out.length - 1];
    if (last && !cut.has(i)) {
      last.ids.push(...c.ids);
      if (c.hi > last.hi) last.hi = c.hi;
    } else out.push({ ids: [...c.ids], lo: c.lo, hi: c.hi });
  });
  return out;
}

/**
 * `(SELECT * FROM spans WHERE <cluster range> AND trace_id IN <its ids> UNION ALL ...)`:
 * the rows of `spans` (every column) of the clusters' traces within their
 * ranges, to be aliased by the caller. DuckDB pushes projections and the caller's filters
 * into each branch. Undefined when there are no clusters (nothing to read).
 */
export function spansOf(P: Params, cs: Cluster[]): string | undefined {
  if (cs.length === 0) return undefined;
  const branch = (c: Cluster): string => {
    const ids =
      c.ids.length === 1
        ? `trace_id = CAST(${P.add(c.ids[0] as string, VARCHAR)} AS UUID)`
        : // a filter in the scan (`IN (subquery)` is a join after the scan: ~6x slower over long ranges)
          `list_contains(CAST(${P.add(listValue(c.ids), LIST(VARCHAR))} AS UUID[]), trace_id)`;
    return `SELECT * FROM spans WHERE ${windowSql(P, c.lo, c.hi)} AND ${ids}`;
  };
  return `(${cs.map(branch).join('\n UNION ALL ')})`;
}
