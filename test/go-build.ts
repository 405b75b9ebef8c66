// Builds the Go programs the tests run, with a given Go toolchain, and caches the binary by
// (source, toolchain version): a second run of the suite builds nothing.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync } from 'node:fs';
import { join, resolve } from 'node:path';

const CACHE = resolve('node_modules', '.cache', 'osprey-go');

export interface GoToolchain {
  bin: string;
  /** "go1.26.8" */
  version: string;
}

function version(bin: string): string | undefined {
  try {
    const out = execFileSync(bin, ['env', 'GOVERSION'], { encoding: 'utf8', env: { ...process.env, GOTOOLCHAIN: 'local' } });
    return out.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** the Go on PATH (this machine's current Go) and Debian's older golang-go, when present */
export function goToolchains(): GoToolchain[] {
  const candidates = ['go', '/usr/local/go/bin/go'];
  try {
    for (const d of readdirSync('/usr/lib')) if (/^go-1\.\d+$/.test(d)) candidates.push(join('/usr/lib', d, 'bin', 'go'));
  } catch {
    // no Debian Go
  }
  const seen = new Map<string, GoToolchain>();
  for (const bin of candidates) {
    const v = version(bin);
    if (v && !seen.has(v)) seen.set(v, { bin, version: v });
  }
  return [...seen.values()];
}

/** the path of `source` built with `go`, built now unless cached */
export function buildGo(source: string, go: GoToolchain): string {
  const src = readFileSync(source);
  const hash = createHash('sha256').update(src).update(go.version).digest('hex').slice(0, 16);
  const out = join(CACHE, `${hash}-${go.version}`);
  if (existsSync(out)) return out;
  mkdirSync(CACHE, { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  execFileSync(go.bin, ['build', '-o', tmp, source], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-buildvcs=false', CGO_ENABLED: '0' },
    timeout: 300_000,
  });
  renameSync(tmp, out);
  return out;
}
