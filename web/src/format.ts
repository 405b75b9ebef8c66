// Numbers as people read them.

/** 1.23 s, 45.6 ms, 789 µs */
export function dur(ns: number): string {
  if (!Number.isFinite(ns)) return '–';
  if (ns >= 60e9) return `${(ns / 60e9).toFixed(1)} min`;
  if (ns >= 1e9) return `${(ns / 1e9).toFixed(ns >= 10e9 ? 1 : 2)} s`;
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(ns >= 100e6 ? 0 : ns >= 10e6 ? 1 : 2)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(ns >= 100e3 ? 0 : 1)} µs`;
  return `${Math.round(ns)} ns`;
}

/** a Go duration for TraceQL: 1.5s, 200ms, 30us */
export function goDur(ns: number): string {
  if (ns >= 1e9 && ns % 1e6 === 0) return `${+(ns / 1e9).toFixed(3)}s`;
  if (ns >= 1e6) return `${+(ns / 1e6).toFixed(3)}ms`;
  if (ns >= 1e3) return `${+(ns / 1e3).toFixed(3)}us`;
  return `${Math.round(ns)}ns`;
}

export function rate(perSec: number): string {
  if (perSec >= 100) return `${perSec.toFixed(0)}/s`;
  if (perSec >= 1) return `${perSec.toFixed(1)}/s`;
  if (perSec > 0) return `${(perSec * 60).toFixed(1)}/min`;
  return '0';
}

export function pct(p: number): string {
  if (p === 0) return '0%';
  if (p < 0.1) return '<0.1%';
  return `${p >= 10 ? p.toFixed(0) : p.toFixed(1)}%`;
}

/** unix ns (decimal string) → local time, with the date when not today */
export function time(ns: string | bigint): string {
  const ms = Number(BigInt(ns) / 1_000_000n);
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  const t = d.toLocaleTimeString(undefined, { hour12: false }) + '.' + String(ms % 1000).padStart(3, '0');
  return today ? t : `${d.toLocaleDateString()} ${t}`;
}

export function ago(ns: string | bigint): string {
  const s = (Date.now() - Number(BigInt(ns) / 1_000_000n)) / 1000;
  if (s < 60) return `${Math.max(0, Math.round(s))}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

export function count(n: number): string {
  return n.toLocaleString('en-US');
}
