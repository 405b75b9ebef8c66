// What the agent process's memory is made of, for `osprey status` (status API field `memory`):
// resident memory as the kernel splits it (file-backed text of node and libduckdb vs anonymous),
// the peak, V8's heap, the allocator settings in force (bin/osprey sets them), and DuckDB's own accounting of its buffer
// pool. DuckDB's figure needs a query, so it is refreshed in the background and reported as of
// its last refresh (`store.asOf`); the rest is read when asked.
import { readFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';
import type { DuckStore, StoreMemory } from '../store/index.js';

/** how often DuckDB's memory is read (one small query on a reader connection) */
const STORE_REFRESH_MS = 10_000;

export interface SelfMemoryReport {
  /** resident set, bytes (/proc/self/smaps_rollup Rss) */
  rssBytes: number;
  /** anonymous resident memory: heaps of V8, malloc and DuckDB, stacks */
  anonymousBytes: number;
  /** file-backed resident memory: mostly the text of node and libduckdb, shared with the page cache */
  fileBytes: number;
  /** highest resident set since start (VmHWM) */
  peakRssBytes: number;
  /** V8's heap: committed, used, and the young generation (new space) committed */
  v8: { totalBytes: number; usedBytes: number; newSpaceBytes: number; oldSpaceBytes: number };
  /** glibc malloc arenas allowed (MALLOC_ARENA_MAX as this process got it); undefined = glibc's default, 8 per core */
  mallocArenaMax: number | undefined;
  /** DUCKDB_JE_MALLOC_CONF as this process got it (DuckDB's jemalloc reads it); undefined = DuckDB's own settings */
  duckdbAllocatorConf: string | undefined;
  /** DuckDB's memory_limit and buffer-manager use as of `asOf` (ms since the epoch); absent without a store */
  store?: StoreMemory & { asOf: number };
}

function smapsRollup(): { rss: number; anon: number; hwm: number } {
  const kb = (text: string, key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  let rss = NaN;
  let anon = NaN;
  let hwm = NaN;
  try {
    const r = readFileSync('/proc/self/smaps_rollup', 'utf8');
    rss = kb(r, 'Rss');
    anon = kb(r, 'Anonymous');
  } catch {
    // not Linux, or /proc not mounted: the figures stay NaN (JSON null)
  }
  try {
    hwm = kb(readFileSync('/proc/self/status', 'utf8'), 'VmHWM');
  } catch {
    // as above
  }
  return { rss, anon, hwm };
}

/** the arena limit this process runs with: bin/osprey sets MALLOC_ARENA_MAX before node starts (glibc reads it then) */
export function mallocArenaMax(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = Number(env['MALLOC_ARENA_MAX']);
  return Number.isInteger(v) && v > 0 ? v : undefined;
}

export class SelfMemory {
  private duck: (StoreMemory & { asOf: number }) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private refreshing = false;

  constructor(private readonly store: DuckStore | undefined) {}

  start(): this {
    if (!this.store) return this;
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), STORE_REFRESH_MS);
    this.timer.unref();
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** reads DuckDB's figures now (the status test waits on it; the timer calls it too) */
  async refresh(): Promise<void> {
    if (!this.store || this.refreshing) return;
    this.refreshing = true;
    try {
      this.duck = { ...(await this.store.memory()), asOf: Date.now() };
    } catch {
      // the store is shutting down: keep the last figures
    } finally {
      this.refreshing = false;
    }
  }

  report(): SelfMemoryReport {
    const r = smapsRollup();
    let total = 0;
    let used = 0;
    let newSpace = 0;
    let oldSpace = 0;
    for (const s of getHeapSpaceStatistics()) {
      total += s.space_size;
      used += s.space_used_size;
      if (s.space_name === 'new_space') newSpace = s.space_size;
      if (s.space_name === 'old_space') oldSpace = s.space_size;
    }
    return {
      rssBytes: r.rss,
      anonymousBytes: r.anon,
      fileBytes: r.rss - r.anon,
      peakRssBytes: r.hwm,
      v8: { totalBytes: total, usedBytes: used, newSpaceBytes: newSpace, oldSpaceBytes: oldSpace },
      mallocArenaMax: mallocArenaMax(),
      duckdbAllocatorConf: process.env['DUCKDB_JE_MALLOC_CONF'] || undefined,
      ...(this.duck ? { store: this.duck } : {}),
    };
  }
}
