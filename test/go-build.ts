// Builds the Go programs the tests run, with a given Go toolchain, and caches the binary by
// (source, toolchain version): a second run of the suite builds nothing.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync } from 'node:fs';
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

/**
 * The path of `source` built with `go`, built now unless cached. `source` is one .go file, or
 * a directory holding a main package with its go.mod (for programs with assembly files);
 * `ldflags` are passed to the linker (e.g. "-s -w" for a stripped binary).
 */
export function buildGo(source: string, go: GoToolchain, opts: { ldflags?: string } = {}): string {
  const dir = statSync(source).isDirectory();
  const hash = createHash('sha256');
  if (dir) {
    for (const f of readdirSync(source).sort()) hash.update(f).update('\0').update(readFileSync(join(source, f)));
  } else {
    hash.update(readFileSync(source));
  }
  hash.update(go.version);
  if (opts.ldflags) hash.update('\0ldflags ' + opts.ldflags);
  const out = join(CACHE, `${hash.digest('hex').slice(0, 16)}-${go.version}`);
  if (existsSync(out)) return out;
  mkdirSync(CACHE, { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  const args = ['build', '-o', tmp, ...(opts.ldflags ? [`-ldflags=${opts.ldflags}`] : []), dir ? '.' : source];
  execFileSync(go.bin, args, {
    cwd: dir ? source : undefined,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-buildvcs=false', CGO_ENABLED: '0' },
    timeout: 300_000,
  });
  renameSync(tmp, out);
  return out;
}
