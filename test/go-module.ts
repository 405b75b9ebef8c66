// Builds a small Go program that needs modules from the Go module proxy (a folder with its
// main.go, no go.mod checked in: the module file is written here from `requires`), cached by
// (sources, requires, toolchain) under node_modules/.cache/osprey-go: a second run builds nothing.
// test/go-build.ts does the same for single files without dependencies.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const CACHE = resolve('node_modules', '.cache', 'osprey-go');
const GO = existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go';
const ENV = { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-buildvcs=false -mod=mod', CGO_ENABLED: '0' };

/** the binary of the Go program in `dir` (its *.go files) with `requires` ("module@version") */
export function buildGoModule(dir: string, name: string, requires: readonly string[]): string {
  const version = execFileSync(GO, ['env', 'GOVERSION'], { encoding: 'utf8', env: ENV }).trim();
  const sources = readdirSync(dir).filter((f) => f.endsWith('.go')).sort();
  const h = createHash('sha256').update(version).update(requires.join('\n'));
  for (const f of sources) h.update(f).update(readFileSync(join(dir, f)));
  const out = join(CACHE, `${name}-${h.digest('hex').slice(0, 16)}`);
  if (existsSync(out)) return out;
  mkdirSync(CACHE, { recursive: true });
  const tmp = mkdtempSync(join(CACHE, `${name}-build-`));
  try {
    for (const f of sources) copyFileSync(join(dir, f), join(tmp, f));
    writeFileSync(join(tmp, 'go.mod'), `module osprey.test/${name}\n\ngo 1.23\n`);
    const go = (args: string[]) => execFileSync(GO, args, { cwd: tmp, env: ENV, stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
    go(['get', ...requires]);
    go(['mod', 'tidy']);
    go(['build', '-o', `${out}.tmp`, '.']);
    renameSync(`${out}.tmp`, out);
    return out;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
