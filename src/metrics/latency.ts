// Percentiles read from a classic histogram, for the store's RED and service-graph rollups
// (src/store/rollups.ts), which keep the same histograms /metrics exposes.

/**
 * Estimated q-quantile (0..1), ns, of the observations in `counts` (per bucket, not
 * cumulative; boundsNs ascending, the last slot of counts is +Inf), as Prometheus'
 * histogram_quantile computes it: linear interpolation inside the bucket that holds the
 * rank, the first bucket starting at 0; a rank in the +Inf bucket answers the last bound.
 * 0 when empty.
 */
export function histogramQuantile(boundsNs: ArrayLike<number>, counts: ArrayLike<number>, q: number): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i] ?? 0;
  if (!(total > 0)) return 0;
  const last = boundsNs.length > 0 ? (boundsNs[boundsNs.length - 1] as number) : 0;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i] ?? 0;
    if (c <= 0) continue;
    if (seen + c >= rank) {
      if (i >= boundsNs.length) return last;
      const lo = i === 0 ? 0 : (boundsNs[i - 1] as number);
      const hi = boundsNs[i] as number;
      return lo + (hi - lo) * Math.max(0, (rank - seen) / c);
    }
    seen += c;
  }
  return last;
}
