// Table layout. One wide, append-only `spans` table inserted roughly in time order, so
// DuckDB's per-row-group min/max (zone maps) on start_ns skip everything outside a time
// window; resources (per process: service.name, pid, pod...) are stored once in
// `resources` and referenced by id.
//
// Attribute values keep their JSON type (string / number / boolean): the JSON text is
// the source of truth for round trips; a few hot attributes are also copied into
// typed columns for fast filters. A hot column holds the value only when it has the
// column's type (e.g. http_route only for string routes), so a filter on the column
// is exact: a value of another type cannot match a literal of the column's type anyway.

import { HOT_ATTRIBUTES, type SpanKind, type SpanStatus } from '../model/index.js';

// Version 2: hot attributes are no longer repeated in the JSON (it holds only the rest, NULL
// when there is none), 19 hot columns instead of 4, RED/service-graph rollup tables.
// Version 3: the SPAN_ENUMS columns are ENUMs. A build before it would open such a store and
// refuse every span it appends (its buffers are VARCHAR): it refuses the version instead.
// Version 4: the SPAN_CODED columns are codes into the `strings` table.
export const SCHEMA_VERSION = '4';
/** versions this build opens: older stores keep their VARCHAR columns (writer.ts and compile.ts follow the table) */
export const READABLE_SCHEMA_VERSIONS: readonly string[] = ['2', '3', SCHEMA_VERSION];

/** the column of each hot attribute (src/model's HOT_ATTRIBUTES, which fixes their order and types) */
const HOT_COLUMN: Readonly<Record<(typeof HOT_ATTRIBUTES)[number][0], string>> = {
  'http.request.method': 'http_method',
  'url.path': 'url_path',
  'http.route': 'http_route',
  'network.protocol.name': 'net_protocol',
  'network.protocol.version': 'net_protocol_version',
  'network.peer.address': 'net_peer_address',
  'network.peer.port': 'net_peer_port',
  'url.query': 'url_query',
  'server.address': 'server_address',
  'server.port': 'server_port',
  'client.address': 'client_address',
  'url.scheme': 'url_scheme',
  'url.full': 'url_full',
  'user_agent.original': 'user_agent',
  'http.request.body.size': 'http_request_body_size',
  'http.response.status_code': 'http_status_code',
  'http.response.body.size': 'http_response_body_size',
  'error.type': 'error_type',
  'osprey.link': 'osprey_link',
};

/**
 * Span attributes stored in typed columns: key → [column, JS type it must have], in the
 * order of the Span's hot fields. A value of the column's type is stored ONLY in its
 * column, never in the `attributes` JSON; a value of another type (a numeric http.route)
 * only in the JSON. These are the attributes the agent writes on HTTP spans
 * (src/agent/spans.ts), so the JSON of its spans is NULL. Adding a key changes the table:
 * bump SCHEMA_VERSION.
 */
export const HOT_SPAN_ATTRS: Readonly<Record<string, readonly [string, 'string' | 'number']>> = Object.fromEntries(
  HOT_ATTRIBUTES.map(([k, t]) => [k, [HOT_COLUMN[k], t] as const]),
);
/**
 * The compression method of each `spans` column whose data has a stable shape; the others
 * are left to DuckDB (it analyses every method that fits the type at each checkpoint and
 * keeps the smallest). A fixed method skips the analysis of the others: the dictionary
 * analysis of a high-cardinality url_path (a hash of every string) and FSST's symbol table for
 * the low-cardinality columns were the bulk of a checkpoint's CPU. bench/store-checkpoint.mjs,
 * medians: spans of a pipeline.mjs replay 3.05 -> 2.72 µs of checkpoint CPU per span,
 * store-ingest.mjs spans (paths with ids) 3.50 -> 2.65. These are the methods DuckDB picked
 * anyway, except url_path when it has only a few values (the replay's 3 paths: a dictionary,
 * 2.2 bytes per span less than FSST). What a fixed method does on data that does not fit it
 * (checked on DuckDB 1.5):
 * - dictionary on all-distinct strings keeps the dictionary: ~4x the size of FSST. Only columns
 *   whose values come from a small set the services define (methods, routes, services,
 *   protocol fields: ENUMs or codes since, see SPAN_ENUMS and SPAN_CODED) got it; client and peer addresses can be as many as the clients (all
 *   distinct in bench/traceql-bench.mjs's data, where DuckDB picks FSST for some row groups),
 *   and what clients choose (Host headers, user agents) or SDKs (span names) can be too.
 * - FSST on a row group whose values are all NULL or all empty falls back to uncompressed
 *   (~4 bytes a row). So url_path (set on every HTTP span) gets it, not url_full (client spans
 *   only), url_query or the attribute JSON (NULL on the agent's spans), which stay automatic.
 * - CONSTANT and RLE cannot be fixed (DuckDB refuses them), so columns that are often constant
 *   or in runs (ports, body sizes, status codes, status, trace ids of adjacent spans) stay
 *   automatic. A segment whose values are all equal is still stored as a constant whatever the
 *   fixed method.
 * The methods are part of the table definition: a store created before keeps its automatic
 * columns (same columns and types, nothing to migrate), only new stores get these. DuckDB's
 * newer storage formats (v1.3+) refuse a fixed dictionary or FSST as deprecated: DuckStore.open
 * then makes the table without those two (duckstore.ts).
 */
export const SPAN_COMPRESSION: Readonly<Record<string, 'dictionary' | 'fsst' | 'bitpacking' | 'uncompressed'>> = {
  // time-ordered and small integers: DuckDB's choice every time
  start_ns: 'bitpacking',
  duration_ns: 'bitpacking',
  kind: 'bitpacking',
  res_id: 'bitpacking',
  // random 64-bit ids: nothing compresses them
  span_id: 'uncompressed',
  // paths carry ids: many distinct values per row group
  url_path: 'fsst',
  // left to DuckDB: values a client or an SDK chooses (the Host header or the peer's address in
  // server_address, user agents, OTLP span names), which can be all distinct in a row group,
  // where a fixed dictionary takes ~4x FSST's space (the review of session 10 measured 30.6
  // against 7.0 bytes per row for distinct host names)
};
/**
 * Hot string columns whose values come from a small set the protocols define, stored as a
 * DuckDB ENUM: a one-byte code per span instead of a string. A string costs DuckDB per value,
 * at every step of an append (statistics, a hash for the distinct count, a copy into the
 * local storage and another at commit) and again at each checkpoint; a code costs what a
 * number does. bench, session 12 (store-flush's method on 245,760 spans of a store file,
 * threads 1, no WAL, 6 alternated rounds, medians, µs of CPU per span): these five columns as
 * VARCHAR 2.2 append + 3.6 checkpoint, as ENUM 1.8 + 2.9.
 * A value outside the set (a custom method, another protocol) is stored in the attribute
 * JSON instead (writer.ts), so the column holds only the set's values and a filter on a
 * value of the set reads only the column (compile.ts). Stores made before keep VARCHAR columns
 * (the writer and the queries follow the table's types): the sets are part of the table.
 */
export const SPAN_ENUMS: Readonly<Record<string, readonly string[]>> = {
  // the methods of RFC 9110 and RFC 5789, and semconv's _OTHER
  http_method: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', '_OTHER'],
  net_protocol: ['http', 'grpc', 'spdy', 'quic', 'amqp', 'mqtt', 'kafka'],
  net_protocol_version: ['1.0', '1.1', '2', '3', '2.0', '0.9'],
  url_scheme: ['http', 'https', 'ws', 'wss'],
  // LinkSource (src/model)
  osprey_link: ['traceparent', 'tuple', 'thread', 'runtime', 'none'],
};
/**
 * String columns whose values repeat: the span name, its resource's service and namespace, what
 * repeats per connection (the peer, the Host header, the client, its user agent) and what a
 * service defines (routes, error types). Stored as a UINTEGER code of the string in the
 * `strings` table: the writer hands DuckDB each distinct string once (strings.ts), the span row
 * only a small number. A string value costs DuckDB per row at every step of an append and again
 * at each checkpoint (see SPAN_ENUMS); an integer that bit-packs costs next to nothing at both.
 * bench, session 13 (store-flush's method on 245,760 spans of a store file, threads 1, no WAL,
 * 4 alternated rounds, medians, µs of CPU per span, append + checkpoint): the four
 * per-connection columns 2.7 + 4.2 as VARCHAR, 2.3 + 2.9 as codes; then name, service,
 * namespace and route 1.7 + 2.1 -> 1.3 + 1.4. store-ingest 10.25 -> 7.65 µs per span
 * (docs/benchmarks.md). The URL columns stay strings: a path with ids is new nearly every time.
 * Unlike an ENUM's, the set is open: any string gets a code. A code always means one string; a
 * string may have more than one code (strings.ts forgets old ones beyond a bound), so filters
 * look the codes up by string (Queries.lookupCodes, or `col IN (SELECT id FROM strings WHERE s
 * ...)`, compile.ts) and groupings group by code and decode after, or decode before they group.
 * Stores made before keep VARCHAR columns. Adding a column here changes the table: bump
 * SCHEMA_VERSION.
 */
export const SPAN_CODED: ReadonlySet<string> = new Set([
  'name',
  'service',
  'namespace',
  'net_peer_address',
  'server_address',
  'client_address',
  'user_agent',
  'http_route',
  'error_type',
]);
/** SQL: the string of a SPAN_CODED column's code `expr` (NULL for NULL) */
export const decodeSql = (expr: string): string => `(SELECT dict.s FROM strings dict WHERE dict.id = ${expr})`;
/** SQL: `expr op p` for a column that holds codes when `coded` (the codes of the strings that satisfy it), else as it is */
export function codedCmp(coded: boolean, expr: string, cmp: (x: string) => string): string {
  return coded ? `(${expr} IN (SELECT dict.id FROM strings dict WHERE ${cmp('dict.s')}))` : cmp(expr);
}

const sqlEnum = (vals: readonly string[]): string => `ENUM(${vals.map((v) => `'${v.replace(/'/g, "''")}'`).join(', ')})`;

const using = (col: string): string => {
  const m = SPAN_COMPRESSION[col];
  return m === undefined ? '' : ` USING COMPRESSION ${m}`;
};
const HOT_DDL = Object.values(HOT_SPAN_ATTRS)
  .map(([col, t]) => {
    const e = SPAN_ENUMS[col];
    const type = e ? sqlEnum(e) : SPAN_CODED.has(col) ? 'UINTEGER' : t === 'string' ? 'VARCHAR' : 'DOUBLE';
    return `    ${col} ${type}${e || SPAN_CODED.has(col) ? '' : using(col)},`;
  })
  .join('\n');

export const DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS osprey_meta (key VARCHAR NOT NULL, value VARCHAR NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS resources (
    id UINTEGER NOT NULL,
    service VARCHAR,
    namespace VARCHAR,
    attributes VARCHAR NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS spans (
    start_ns BIGINT NOT NULL${using('start_ns')},
    duration_ns BIGINT NOT NULL${using('duration_ns')},
    trace_id UUID NOT NULL${using('trace_id')},
    span_id UBIGINT NOT NULL${using('span_id')},
    parent_span_id UBIGINT${using('parent_span_id')},
    name UINTEGER NOT NULL,
    kind UTINYINT NOT NULL${using('kind')},
    status UTINYINT NOT NULL${using('status')},
    status_message VARCHAR${using('status_message')},
    res_id UINTEGER NOT NULL${using('res_id')},
    service UINTEGER,
    namespace UINTEGER,
${HOT_DDL}
    attributes VARCHAR${using('attributes')}
  )`,
  // where each trace's spans lie in time: one row per trace per flush (min/max start of
  // its spans in that flush). trace() reads the trace's time range here (a scan of ~1/6th
  // of the rows, numbers only) and then only the row groups of `spans` in that range.
  // every span attribute key ever stored (NULL row = more than MAX_SPAN_KEYS, i.e. unknown):
  // a condition on a key no span has is false without reading any attributes, which
  // makes unscoped resource conditions (.service.name, .process.pid) cheap
  `CREATE TABLE IF NOT EXISTS span_keys (key VARCHAR)`,
  // the strings of SPAN_CODED columns: each id once, a string possibly under several ids
  `CREATE TABLE IF NOT EXISTS strings (id UINTEGER NOT NULL, s VARCHAR NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS trace_index (
    trace_id UUID NOT NULL,
    min_ns BIGINT NOT NULL,
    max_ns BIGINT NOT NULL
  )`,
];

/** Column order of `spans` (the appender writes in this order): these, the hot columns, `attributes`. */
const SPAN_FIXED_COLUMNS: readonly string[] = [
  'start_ns',
  'duration_ns',
  'trace_id',
  'span_id',
  'parent_span_id',
  'name',
  'kind',
  'status',
  'status_message',
  'res_id',
  'service',
  'namespace',
];
/** position of the first hot column in SPAN_COLUMNS */
export const SPAN_HOT_AT = SPAN_FIXED_COLUMNS.length;
export const SPAN_COLUMNS: readonly string[] = [...SPAN_FIXED_COLUMNS, ...Object.values(HOT_SPAN_ATTRS).map(([col]) => col), 'attributes'];

/** OTLP SpanKind numbering. */
export const KIND_CODE: Readonly<Record<SpanKind, number>> = {
  unspecified: 0,
  internal: 1,
  server: 2,
  client: 3,
  producer: 4,
  consumer: 5,
};
export const KIND_BY_CODE: readonly SpanKind[] = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'];

/** OTLP StatusCode numbering. */
export const STATUS_CODE: Readonly<Record<SpanStatus, number>> = { unset: 0, ok: 1, error: 2 };
export const STATUS_BY_CODE: readonly SpanStatus[] = ['unset', 'ok', 'error'];

/** Resource attributes copied into typed columns (on both spans and resources). */
export const HOT_RESOURCE_ATTRS: Readonly<Record<string, readonly [string, 'string']>> = {
  'service.name': ['service', 'string'],
  'k8s.namespace.name': ['namespace', 'string'],
};

/** Distinct span attribute keys remembered; beyond this any key may exist. */
export const MAX_SPAN_KEYS = 10_000;

/** Name used for spans whose resource has no string service.name. */
export const UNKNOWN_SERVICE = 'unknown_service';
