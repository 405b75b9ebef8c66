// Small pieces the standalone bench scripts share: importing the build, reading options.
import { existsSync } from 'node:fs';

/** imports a module of the build (dist/src/<rel>), with a clear error before a build */
export async function loadDist(rel) {
  for (const base of ['../../dist/', '../../dist/src/']) {
    const url = new URL(base + rel, import.meta.url);
    if (existsSync(url)) return import(url.href);
  }
  throw new Error(`build first (npx tsc -p tsconfig.json): ${rel} not found under dist/`);
}

/** the value after --name on the command line, or def */
export function option(name, def) {
  const args = process.argv.slice(2);
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : def;
}

/** CPU of this process (all threads), µs */
export function cpuUs() {
  const c = process.cpuUsage();
  return c.user + c.system;
}
