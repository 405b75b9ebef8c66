// Go `time.ParseDuration` syntax: an optionally signed sequence of decimal numbers,
// each with an optional fraction and a unit: "300ms", "-1.5h", "2h45m", "1µs".

const UNIT_NANOS: Readonly<Record<string, number>> = {
  ns: 1,
  us: 1e3,
  'µs': 1e3, // U+00B5 micro sign
  'μs': 1e3, // U+03BC greek mu
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

const PART = /([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)/y;

/**
 * Parses a Go duration into nanoseconds. Returns undefined when `text` is not a
 * valid Go duration (like Go, a bare "0" is accepted, other unitless numbers are not).
 */
export function parseGoDuration(text: string): number | undefined {
  let s = text;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') return undefined;
  let total = 0;
  PART.lastIndex = 0;
  let at = 0;
  while (at < s.length) {
    PART.lastIndex = at;
    const m = PART.exec(s);
    if (!m) return undefined;
    const num = m[1] ?? '';
    const unit = m[2] ?? '';
    // a number needs at least one digit: "." and "" are invalid
    if (!/[0-9]/.test(num)) return undefined;
    const scale = UNIT_NANOS[unit];
    if (scale === undefined) return undefined;
    total += Number(num) * scale;
    at = PART.lastIndex;
  }
  if (!Number.isFinite(total)) return undefined;
  return sign * total;
}
