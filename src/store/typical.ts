// "Is this trace slow, and where?": the typical trace of the same kind of request. Peers
// are the traces whose root (trace-page.ts ROOT_FIRST: no stored parent) has the same
// service and span name, started within `aroundNs` of this trace's root and nearest to it
// in time (at most MAX_PEERS); the typical one is the peer whose root span lasted closest
// to the peers' median (the nearest in time among equals). The root span's duration stands
// for the request's: it is what the caller waited.

import { BIGINT, UINTEGER, VARCHAR } from '@duckdb/node-api';
import { Params, windowSql } from './compile.js';
import { normalizeTraceId, uuidHex, type StoreCore } from './core.js';
import { UNKNOWN_SERVICE, codedCmp } from './schema.js';
import { ROOT_FIRST, type TracePages } from './trace-page.js';

export interface TypicalTrace {
  /** this trace's root */
  root: { service: string; name: string; durationNs: number; startNs: bigint };
  /** traces with a root of that service and name around it (this one left out) */
  peers: number;
  /** median root duration of the peers */
  medianNs: number | undefined;
  /** the peer closest to the median; undefined when there is no peer */
  typical: { traceId: string; durationNs: number } | undefined;
}

/** peers looked at, the nearest in time first: enough for a stable median, bounded work */
export const MAX_PEERS = 1000;

export class TypicalTraces {
  constructor(
    private readonly core: StoreCore,
    private readonly pages: TracePages,
  ) {}

  /** undefined when the trace is not stored */
  async find(traceId: string, aroundNs: bigint): Promise<TypicalTrace | undefined> {
    const id = normalizeTraceId(traceId);
    if (id === undefined) return undefined;
    const { lo, hi } = await this.pages.timeRange([id]);
    if (lo === undefined || hi === undefined) return undefined;
    const P = new Params();
    const root = (
      await this.core.query(
        `WITH t AS MATERIALIZED (
           SELECT span_id, parent_span_id, ${this.core.text('service', 'service')} AS service, ${this.core.text('name', 'name')} AS name, start_ns, duration_ns FROM spans
           WHERE trace_id = CAST(${P.add(id, VARCHAR)} AS UUID) AND ${windowSql(P, lo, hi)})
         SELECT first(t.service ORDER BY ${ROOT_FIRST}), first(t.name ORDER BY ${ROOT_FIRST}),
                first(t.duration_ns ORDER BY ${ROOT_FIRST}), first(t.start_ns ORDER BY ${ROOT_FIRST}), count(*)
         FROM t LEFT JOIN t p ON p.span_id = t.parent_span_id`,
        P,
      )
    )[0];
    if (!root || Number(root[4]) === 0) return undefined;
    const service = root[0] === null ? null : String(root[0]);
    const name = String(root[1]);
    const startNs = root[3] as bigint;
    const out: TypicalTrace = {
      root: { service: service ?? UNKNOWN_SERVICE, name, durationNs: Number(root[2]), startNs },
      peers: 0,
      medianNs: undefined,
      typical: undefined,
    };

    const Q = new Params();
    const win = windowSql(Q, startNs - aroundNs, startNs + aroundNs);
    const t0 = Q.add(startNs, BIGINT);
    const eq = (col: string, v: string): string => codedCmp(this.core.coded(col), col, (x) => `${x} = ${Q.add(v, VARCHAR)}`);
    const svc = service === null ? 'service IS NULL' : eq('service', service);
    // candidates: spans named like the root, nearest in time; kept if their parent is not
    // stored (parents are looked up only in the candidates' traces)
    const rows = await this.core.query(
      `WITH c AS MATERIALIZED (
         SELECT trace_id, span_id, parent_span_id, start_ns, duration_ns FROM spans
         WHERE ${win} AND ${eq('name', name)} AND ${svc} AND trace_id <> CAST(${Q.add(id, VARCHAR)} AS UUID)
         ORDER BY abs(start_ns - ${t0}) LIMIT ${Q.add(MAX_PEERS * 2, UINTEGER)}),
       par AS (SELECT trace_id, span_id FROM spans WHERE ${win} AND trace_id IN (SELECT DISTINCT trace_id FROM c)),
       r AS (SELECT c.* FROM c ANTI JOIN par ON par.trace_id = c.trace_id AND par.span_id = c.parent_span_id
             ORDER BY abs(c.start_ns - ${t0}) LIMIT ${Q.add(MAX_PEERS, UINTEGER)}),
       m AS (SELECT median(duration_ns) AS med, count(DISTINCT trace_id) AS n FROM r)
       SELECT r.trace_id, r.duration_ns, m.med, m.n FROM r, m
       ORDER BY abs(r.duration_ns - m.med), abs(r.start_ns - ${t0}), r.trace_id LIMIT 1`,
      Q,
    );
    const best = rows[0];
    if (!best) return out;
    out.peers = Number(best[3]);
    out.medianNs = Number(best[2]);
    out.typical = { traceId: uuidHex(best[0]), durationNs: Number(best[1]) };
    return out;
  }
}
