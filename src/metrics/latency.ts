// Latency histograms fine enough to read percentiles from, shared by the store's rollups
// (src/store/rollups.ts) and anything else that needs RED percentiles from buckets.
//
// Bins are quarter octaves anchored on Tempo's span-metrics buckets: bound(j) = 2 ms · 2^(j/4),
// so every Tempo bound (2 ms · 2^k) is a bin bound (j = 4k) and a Tempo histogram is an exact
// fold of this one (tempoCounts). A percentile read from these bins is within one bin, i.e.
// within 19% of the true value, and interpolated linearly inside it (as Prometheus'
// histogram_quantile does), which typically lands within a few percent.
import { SPAN_METRICS_BUCKETS } from './series.js';

/** j of the first bound: 2 ms / 2^10 ≈ 1.95 µs */
const J_MIN = -40;
/** j of the last bound: 2 ms · 2^15 ≈ 65.5 s */
const J_MAX = 60;
const BASE_NS = 2e6;

/** upper bounds of the bins in ns, ascending; a final +Inf bin follows */
export const LATENCY_BOUNDS_NS: readonly number[] = Object.freeze(
  Array.from({ length: J_MAX - J_MIN + 1 }, (_, i) => BASE_NS * 2 ** ((J_MIN + i) / 4)),
);
/** bins, the +Inf one included */
export const LATENCY_BINS = LATENCY_BOUNDS_NS.length + 1;
const FIRST = LATENCY_BOUNDS_NS[0] as number;
const LAST = LATENCY_BOUNDS_NS[LATENCY_BOUNDS_NS.length - 1] as number;

/** the bin of a duration (ns, negative = 0): bin i holds (bound[i-1], bound[i]] */
export function latencyBin(ns: number): number {
  if (!(ns > FIRST)) return 0;
  if (ns > LAST) return LATENCY_BINS - 1;
  let i = Math.ceil(4 * Math.log2(ns / BASE_NS)) - J_MIN;
  // log2 may be off by an ulp next to a bound: settle on the exact bin
  if (i > 0 && ns <= (LATENCY_BOUNDS_NS[i - 1] as number)) i--;
  else if (ns > (LATENCY_BOUNDS_NS[i] as number)) i++;
  return i;
}

/**
 * Estimated q-quantile (0..1) of the durations counted in `counts` (per bin, LATENCY_BINS
 * long), ns: linear interpolation inside the bin that holds the rank, as Prometheus'
 * histogram_quantile; the +Inf bin answers its lower bound. 0 when empty.
 */
export function quantileFromBins(counts: ArrayLike<number>, q: number): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i] ?? 0;
  if (total === 0) return 0;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] ?? 0;
    if (c === 0) continue;
    if (seen + c >= rank) {
      if (i >= LATENCY_BOUNDS_NS.length) return LAST;
      const lo = i === 0 ? 0 : (LATENCY_BOUNDS_NS[i - 1] as number);
      const hi = LATENCY_BOUNDS_NS[i] as number;
      return lo + (hi - lo) * Math.max(0, (rank - seen) / c);
    }
    seen += c;
  }
  return LAST;
}

/** the same observations as a histogram on Tempo's span-metrics bounds (per bucket, +Inf last) */
export function tempoCounts(counts: ArrayLike<number>, bounds: readonly number[] = SPAN_METRICS_BUCKETS): number[] {
  const out = new Array<number>(bounds.length + 1).fill(0);
  let b = 0;
  for (let i = 0; i < counts.length; i++) {
    const upper = i < LATENCY_BOUNDS_NS.length ? (LATENCY_BOUNDS_NS[i] as number) : Infinity;
    while (b < bounds.length && upper > Math.round((bounds[b] as number) * 1e9)) b++;
    out[b]! += counts[i] ?? 0;
  }
  return out;
}
