import { useEffect, useState } from 'react';

export type Loadable<T> = { state: 'loading'; data?: T } | { state: 'ok'; data: T } | { state: 'error'; error: Error & { hint?: string }; data?: T };

/** runs `load` whenever `key` changes, aborting the previous run; keeps the last data while loading */
export function useLoad<T>(key: string, load: (signal: AbortSignal) => Promise<T>): Loadable<T> {
  const [s, setS] = useState<Loadable<T>>({ state: 'loading' });
  useEffect(() => {
    const ac = new AbortController();
    setS((prev) => ({ state: 'loading', data: prev.data }));
    load(ac.signal).then(
      (data) => !ac.signal.aborted && setS({ state: 'ok', data }),
      (error: Error) => !ac.signal.aborted && setS((prev) => ({ state: 'error', error, data: prev.data })),
    );
    return () => ac.abort();
  }, [key]);
  return s;
}
