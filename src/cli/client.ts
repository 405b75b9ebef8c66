// How read commands reach spans: the running agent over HTTP (default), or a
// stopped agent's data directory opened directly.
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import type { SpanJson } from '../agent/span.js';
import { spanToJson } from '../agent/span.js';
import type { EdgeStats, ServiceStats } from '../store/index.js';
import { parseTraceQL, TraceQLError } from '../traceql/index.js';
import { UsageError } from './cli.js';

export interface SpanSource {
  spans(q: string, sinceNs: bigint, limit: number, order: 'start' | 'duration'): Promise<SpanJson[]>;
  trace(id: string): Promise<SpanJson[] | undefined>;
  services(sinceNs: bigint): Promise<ServiceStats[]>;
  edges(sinceNs: bigint): Promise<EdgeStats[]>;
  close(): Promise<void>;
}

export const DEFAULT_SERVER = 'http://127.0.0.1:7070';

export const sourceOptions = {
  server: { type: 'string' },
  data: { type: 'string' },
} as const;

export const sourceHelp = [
  `      --server URL          ask this running agent (default ${DEFAULT_SERVER})`,
  '      --data DIR            read the data dir of a stopped agent instead',
].join('\n');

export async function openSource(values: Record<string, unknown>): Promise<SpanSource> {
  const dir = values.data as string | undefined;
  if (dir !== undefined) {
    if (values.server !== undefined) throw new UsageError('use either --server or --data, not both');
    return openDataDir(dir);
  }
  return new HttpSource((values.server as string | undefined) ?? DEFAULT_SERVER);
}

class HttpSource implements SpanSource {
  constructor(private readonly base: string) {
    try {
      new URL(base);
    } catch {
      throw new UsageError(`--server must be a URL, got "${base}"`);
    }
  }

  async #get<T>(path: string, params: Record<string, string>): Promise<T | undefined> {
    const url = new URL(path, this.base);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    let r: Response;
    try {
      r = await fetch(url, { signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      throw Object.assign(new Error(`no osprey answers at ${this.base} (${(err as Error).cause ? String((err as { cause: Error }).cause.message) : (err as Error).message})`), {
        hint: 'start one with `osprey up`, or read a stopped agent with --data DIR',
      });
    }
    if (r.status === 404 && path.includes('/traces/')) return undefined;
    const body = (await r.json().catch(() => ({}))) as { error?: string; hint?: string };
    if (!r.ok) {
      const err = new Error(body.error ?? `HTTP ${r.status}`);
      if (r.status === 400) throw new UsageError(body.error ?? 'bad request');
      throw Object.assign(err, { hint: body.hint });
    }
    return body as T;
  }

  async spans(q: string, sinceNs: bigint, limit: number, order: 'start' | 'duration'): Promise<SpanJson[]> {
    const r = await this.#get<{ spans: SpanJson[] }>('/api/osprey/spans', { q, since: `${sinceNs}ns`, limit: String(limit), order });
    return r?.spans ?? [];
  }
  async trace(id: string): Promise<SpanJson[] | undefined> {
    return (await this.#get<{ spans: SpanJson[] }>(`/api/osprey/traces/${encodeURIComponent(id)}`, {}))?.spans;
  }
  async services(sinceNs: bigint): Promise<ServiceStats[]> {
    return (await this.#get<{ services: ServiceStats[] }>('/api/osprey/services', { since: `${sinceNs}ns` }))?.services ?? [];
  }
  async edges(sinceNs: bigint): Promise<EdgeStats[]> {
    return (await this.#get<{ edges: EdgeStats[] }>('/api/osprey/graph', { since: `${sinceNs}ns` }))?.edges ?? [];
  }
  async close(): Promise<void> {}
}

async function openDataDir(dir: string): Promise<SpanSource> {
  const path = join(dir, 'spans.duckdb');
  if (!existsSync(path)) throw new UsageError(`no osprey data in ${dir} (expected ${path})`);
  const { DuckStore } = await import('../store/index.js');
  const store = await DuckStore.open({ path, retention: { maxAgeMs: Number.MAX_SAFE_INTEGER, intervalMs: 0 } }).catch((err: Error) => {
    throw Object.assign(new Error(`cannot open ${path}: ${err.message}`), {
      hint: /lock/i.test(err.message) ? 'an agent is running on this data dir: ask it with --server instead' : 'check the path',
    });
  });
  const nowNs = () => BigInt(Date.now()) * 1_000_000n;
  return {
    async spans(q, sinceNs, limit, order) {
      let query;
      try {
        query = parseTraceQL(q);
      } catch (err) {
        if (err instanceof TraceQLError) throw new UsageError(`invalid TraceQL: ${err.message}`);
        throw err;
      }
      const spans = await store.search({ query, startNs: nowNs() - sinceNs, limit, order: order === 'duration' ? 'duration_desc' : 'start_desc' });
      return spans.map(spanToJson);
    },
    async trace(id) {
      const s = await store.trace(id.toLowerCase());
      return s.length ? s.map(spanToJson) : undefined;
    },
    services: (sinceNs) => store.services(nowNs() - sinceNs),
    edges: (sinceNs) => store.edges(nowNs() - sinceNs),
    close: () => store.shutdown(),
  };
}
