import { useEffect, useState } from 'react';

export type Loadable<T> = { state: 'loading'; data?: T } | { state: 'ok'; data: T } | { state: 'error'; error: Error & { hint?: string }; data?: T };

// What a view is opened for goes to the server first, the rest in tiers after it. Search:
// the trace list ('primary'), then the count and the heatmap ('secondary'), then the
// filters' value lists and completion ('background'). The server's store answers a few
// queries at a time on few cores: seven requests at once made the trace list wait behind
// tag-value scans it does not need (2.8 s to the rows at 1M spans on a busy 2-core machine,
// 0.5 s in tiers; bench/ui-search.mjs).
export type Priority = 'primary' | 'secondary' | 'background' | 'any';
const TIER: Record<Exclude<Priority, 'any'>, number> = { primary: 0, secondary: 1, background: 2 };
const inFlight = [0, 0, 0];
let waiting: { tier: number; go: () => void }[] = [];

function clear(tier: number): boolean {
  for (let t = 0; t < tier; t++) if (inFlight[t]! > 0) return false;
  return true;
}

function done(tier: number): void {
  inFlight[tier]!--;
  const still: typeof waiting = [];
  const go: (() => void)[] = [];
  for (const w of waiting) {
    if (clear(w.tier)) go.push(w.go);
    else still.push(w);
  }
  waiting = still;
  for (const f of go) f();
}

/** runs `load` once no load of a higher tier is in flight (checked after the current render's effects have all started theirs) */
function inTier<T>(priority: Priority, signal: AbortSignal, load: () => Promise<T>): Promise<T> {
  if (priority === 'any') return load();
  const tier = TIER[priority];
  const start = () => {
    inFlight[tier]!++;
    const p = load();
    p.then(
      () => done(tier),
      () => done(tier),
    );
    return p;
  };
  if (tier === 0) return start();
  return new Promise<void>((resolve) => {
    setTimeout(() => {
      if (signal.aborted || clear(tier)) resolve();
      else waiting.push({ tier, go: resolve });
    }, 0);
  }).then(start);
}

/** Runs `load` whenever `key` changes, aborting the previous run; keeps the last data while loading. */
export function useLoad<T>(key: string, load: (signal: AbortSignal) => Promise<T>, priority: Priority = 'any'): Loadable<T> {
  const [s, setS] = useState<Loadable<T>>({ state: 'loading' });
  useEffect(() => {
    const ac = new AbortController();
    setS((prev) => ({ state: 'loading', data: prev.data }));
    inTier(priority, ac.signal, () => load(ac.signal)).then(
      (data) => !ac.signal.aborted && setS({ state: 'ok', data }),
      (error: Error) => !ac.signal.aborted && setS((prev) => ({ state: 'error', error, data: prev.data })),
    );
    return () => ac.abort();
  }, [key]);
  return s;
}

/** the same tiers for a load outside useLoad */
export function later<T>(priority: Priority, signal: AbortSignal, load: () => Promise<T>): Promise<T> {
  return inTier(priority, signal, load);
}
