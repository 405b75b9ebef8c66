// How read commands reach spans: the running agent over HTTP (default), or a
// stopped agent's data directory opened directly.
import { join } from 'node:path';
import { existsSync, statSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import type { SpanJson } from '../model/index.js';
import { spanToJson } from '../model/index.js';
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
  return new HttpSource(serverUrl(values.server));
}

/** --server as a URL osprey can ask: http(s), a host, nothing after the path */
export function serverUrl(v: unknown): URL {
  const s = (v as string | undefined) ?? DEFAULT_SERVER;
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new UsageError(`--server must be a URL such as ${DEFAULT_SERVER}, got "${s}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--server must be an http:// or https:// URL, got "${s}"`);
  if (u.search || u.hash) throw new UsageError(`--server must be the agent's base URL without ?query or #fragment, got "${s}"`);
  return u;
}

export interface HttpAnswer {
  status: number;
  type: string;
  body: unknown;
}

const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host not found',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'timed out',
  EPROTO: 'TLS handshake failed',
};

/**
 * GET base+path as JSON with node:http (fetch refuses ports such as 6000 or 10080 that an
 * agent may well listen on). A connection failure is an error saying no agent answers.
 */
export function getJson(base: URL, path: string, params: Record<string, string>, timeoutMs: number): Promise<HttpAnswer> {
  const url = new URL(base.href.replace(/\/+$/, '') + path);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  const get = url.protocol === 'https:' ? httpsGet : httpGet;
  const unreachable = (why: string) =>
    Object.assign(new Error(`no osprey answers at ${base.origin} (${why})`), {
      hint: 'start one with `osprey up`, pass --server URL of a running one, or read a stopped agent with --data DIR',
    });
  return new Promise((resolve, reject) => {
    const req = get(url, { headers: { accept: 'application/json' }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('error', (err: NodeJS.ErrnoException) => reject(unreachable(REASONS[err.code ?? ''] ?? err.message)));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const type = String(res.headers['content-type'] ?? '');
        let body: unknown;
        try {
          body = JSON.parse(text) as unknown;
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, type, body });
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => reject(unreachable(REASONS[err.code ?? ''] ?? err.message)));
  });
}

class HttpSource implements SpanSource {
  constructor(private readonly base: URL) {}

  async #get<T>(path: string, params: Record<string, string>): Promise<T | undefined> {
    const r = await getJson(this.base, path, params, 30_000);
    const body = r.body as { error?: string; hint?: string } | undefined;
    if (r.status === 404 && path.includes('/traces/') && body?.error?.includes('not found')) return undefined;
    if (r.status === 400) throw new UsageError(body?.error ?? 'the agent refused the request (HTTP 400)');
    if (r.status < 200 || r.status > 299 || typeof body !== 'object' || body === null) {
      const what = body?.error ?? (r.status >= 200 && r.status <= 299 ? `answered ${r.type || 'a body'} that is not osprey's JSON` : `HTTP ${r.status}`);
      throw Object.assign(new Error(`${this.base.href.replace(/\/+$/, '')}${path}: ${what}`), {
        hint: body?.hint ?? `is ${this.base.href} an osprey agent? its API is at /api/osprey/ (osprey up prints its URL)`,
      });
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
  if (!existsSync(dir)) throw new UsageError(`--data ${dir}: no such directory`);
  if (!statSync(dir).isDirectory()) throw new UsageError(`--data ${dir}: not a directory`);
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
      const spans = await store.search({ query, startNs: nowNs() - sinceNs, limit, order: order === 'duration' ? 'duration_desc' : 'start_desc' }).catch((err: unknown) => {
        // a regular expression the store cannot compile is found only when the query runs
        throw err instanceof TraceQLError ? new UsageError(`invalid TraceQL: ${err.message}`) : err;
      });
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
