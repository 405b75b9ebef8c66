// The store's query limits and rollup bucket size, without DuckDB: the server and the CLI need
// them in export-only mode (`osprey up --no-store`), where DuckDB is never loaded.

/** Largest `limit` honoured by search() and searchTraces(). */
export const MAX_LIMIT = 1_000_000;

/** rollups (RED, edges) are kept per minute of span start time */
export const ROLLUP_BUCKET_NS = 60_000_000_000n;

/** the start of the rollup bucket holding `ns` */
export function bucketStart(ns: bigint): bigint {
  const r = ns % ROLLUP_BUCKET_NS;
  return r < 0n ? ns - r - ROLLUP_BUCKET_NS : ns - r;
}
