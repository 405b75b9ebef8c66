// A Python virtual environment with given PyPI packages, for tests that run real Python
// programs (grpcio...): created once under node_modules/.cache/osprey-py, keyed by the
// packages and the Python version, and reused: a second run installs nothing.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const CACHE = resolve('node_modules', '.cache', 'osprey-py');

/** the venv's python for `packages` ("name==version"), made now unless cached */
export function pythonVenv(name: string, packages: readonly string[]): string {
  const version = execFileSync('python3', ['-c', 'import sys; print(sys.version)'], { encoding: 'utf8' }).trim();
  const key = createHash('sha256').update(version).update('\0').update(packages.join('\n')).digest('hex').slice(0, 12);
  // a venv's scripts name its directory, so it is made where it stays; the marker says the
  // install finished (an interrupted one is made again)
  const dir = join(CACHE, `${name}-${key}`);
  const done = join(dir, '.osprey-complete');
  const python = join(dir, 'bin', 'python3');
  if (existsSync(done)) return python;
  mkdirSync(CACHE, { recursive: true });
  rmSync(dir, { recursive: true, force: true });
  execFileSync('python3', ['-m', 'venv', dir], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 });
  execFileSync(python, ['-m', 'pip', 'install', '--quiet', '--only-binary=:all:', ...packages], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 600_000 });
  writeFileSync(done, packages.join('\n') + '\n');
  return python;
}
