// Compiles the Java programs the tests run (plain JDK, no dependencies, so javac alone: no
// Maven and nothing downloaded) and caches the classes by (source, javac version) under
// node_modules/.cache/osprey-java: a second run of the suite compiles nothing.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

const CACHE = resolve('node_modules', '.cache', 'osprey-java');

/** "javac 17.0.15", or undefined without a JDK */
export function javacVersion(): string | undefined {
  try {
    return execFileSync('javac', ['-version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** the class directory of the single-file program `source`, compiled now unless cached */
export function buildJava(source: string): string {
  const version = javacVersion();
  if (!version) throw new Error('javac not found: install openjdk-17-jdk-headless (make deps does)');
  const key = createHash('sha256').update(readFileSync(source)).update('\0').update(version).digest('hex').slice(0, 16);
  const out = join(CACHE, key);
  if (existsSync(out)) return out;
  mkdirSync(CACHE, { recursive: true });
  // compiled beside, then renamed: an interrupted build leaves no half directory under the key
  const tmp = `${out}.tmp${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  execFileSync('javac', ['-d', tmp, source], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 300_000 });
  renameSync(tmp, out);
  return out;
}
