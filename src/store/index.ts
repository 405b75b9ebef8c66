// The embedded span store. Only this directory imports DuckDB.

export { DuckStore, MAX_LIMIT, normalizeTraceId, parseMemoryLimit, ROW_GROUP_ROWS } from './duckstore.js';
export { UNKNOWN_SERVICE } from './schema.js';
/** where services()/edges() windows really start: the rollup bucket of their start */
export { bucketStart as rollupWindowStart } from './rollups.js';
export { MAX_EXEMPLARS, MAX_SERIES, MAX_STEPS, toInstant } from './metrics-query.js';
export type { Exemplar, MetricsRange, QueryRangeResponse, RangeSeries, SeriesLabel } from './metrics-query.js';
export type { Analysis, Comparison, Heatmap, TracePage } from './analysis.js';
export type { TraceList, TraceRow } from './trace-page.js';
export type { TypicalTrace } from './typical.js';
export { HEAT_BASE_NS, HEAT_PER_OCTAVE } from './analysis.js';
export type { DuckStoreOptions, RetentionOptions, StoreMemory } from './duckstore.js';
export type {
  EdgeStats,
  RetentionResult,
  SearchOptions,
  SearchOrder,
  ServiceStats,
  SpanStore,
  StoreStats,
  TagOptions,
  TagScope,
  TagValue,
  TimeWindow,
  TraceSearchOptions,
  TraceSummary,
} from './types.js';
