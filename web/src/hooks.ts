import { useEffect, useState } from 'react';

export type Loadable<T> = { state: 'loading'; data?: T } | { state: 'ok'; data: T } | { state: 'error'; error: Error & { hint?: string }; data?: T };

// What a view is opened for (Search: the trace list) goes to the server first; the rest
// (the count, the heatmap, the filters' value lists, completion) waits until it is in.
// The server's store answers a few queries at a time on few cores: seven requests at once
// made the trace list wait behind tag-value scans it does not need (1.1 s at 1M spans
// against ~0.1 s for the list alone).
let primaries = 0;
let waiting: (() => void)[] = [];

function primaryDone(): void {
  if (--primaries > 0) return;
  const w = waiting;
  waiting = [];
  for (const f of w) f();
}

/** resolves once no primary load is running (checked after the current render's effects have all started theirs) */
function afterPrimaries(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(() => {
      if (primaries === 0 || signal.aborted) resolve();
      else waiting.push(resolve);
    }, 0);
  });
}

/**
 * Runs `load` whenever `key` changes, aborting the previous run; keeps the last data while
 * loading. A 'secondary' load starts only when no 'primary' load is in flight.
 */
export function useLoad<T>(key: string, load: (signal: AbortSignal) => Promise<T>, priority: 'primary' | 'secondary' | 'any' = 'any'): Loadable<T> {
  const [s, setS] = useState<Loadable<T>>({ state: 'loading' });
  useEffect(() => {
    const ac = new AbortController();
    setS((prev) => ({ state: 'loading', data: prev.data }));
    let run: Promise<T>;
    if (priority === 'primary') {
      primaries++;
      run = load(ac.signal);
      run.then(primaryDone, primaryDone);
    } else if (priority === 'secondary') run = afterPrimaries(ac.signal).then(() => load(ac.signal));
    else run = load(ac.signal);
    run.then(
      (data) => !ac.signal.aborted && setS({ state: 'ok', data }),
      (error: Error) => !ac.signal.aborted && setS((prev) => ({ state: 'error', error, data: prev.data })),
    );
    return () => ac.abort();
  }, [key]);
  return s;
}

/** the same wait for a load outside useLoad */
export function secondary<T>(signal: AbortSignal, load: () => Promise<T>): Promise<T> {
  return afterPrimaries(signal).then(load);
}
