// The demo's three-tier stack, shared by startDemo (index.ts) and startChain (chain.ts):
//   nginx (reverse proxy, static files) -> node frontend (demo/frontend.mjs) -> python backend (demo/backend.py)
// Readiness uses only bare TCP probes, so starting the stack produces no HTTP requests (no spans).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeNginxConfig } from './nginx.js';
import { childPids, freePort, startProcess, stopAll, waitFor, type StartedProcess } from '../proc/index.js';

/**
 * The package root: the nearest ancestor holding demo/backend.py and package.json. The compiled
 * module is dist/src/demo/*.js (three levels down); walking up also works when run from src/.
 */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'demo', 'backend.py')) && existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

export function demoFile(name: string): string {
  return join(packageRoot(), 'demo', name);
}

/** Debian's python3 when present (a pyenv/asdf shim on PATH would add a bash + exec hop), else PATH. */
export function pythonBin(): string {
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

export interface StackPorts {
  proxy: number;
  frontend: number;
  backend: number;
}

export interface StackOptions {
  /** Directory for nginx's prefix (nginx/) and the static root (static/); created if missing. */
  workDir: string;
  /** Fixed ports: proxy = basePort, frontend = basePort + 1, backend = basePort + 2. Default: free ports. */
  basePort?: number;
  log?: (line: string) => void;
}

export interface Stack {
  ports: StackPorts;
  backend: StartedProcess;
  frontend: StartedProcess;
  nginx: StartedProcess;
  /** nginx master first, then its workers. */
  nginxPids: number[];
  staticRoot: string;
  nginxPrefix: string;
  stop(): Promise<void>;
}

const INDEX_HTML = `<!doctype html>
<html><head><title>Osprey demo</title></head>
<body><h1>Osprey demo</h1><p>Served by nginx with sendfile.</p></body></html>
`;

function writeStaticRoot(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'index.html'), INDEX_HTML);
  // A larger file so sendfile(2) moves a real amount of data.
  const big = Buffer.alloc(256 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = 97 + (i % 26);
  writeFileSync(join(dir, 'big.txt'), big);
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const ports: StackPorts =
    opts.basePort !== undefined
      ? { proxy: opts.basePort, frontend: opts.basePort + 1, backend: opts.basePort + 2 }
      : { proxy: await freePort(), frontend: await freePort(), backend: await freePort() };
  const nginxPrefix = join(resolve(opts.workDir), 'nginx');
  const staticRoot = join(resolve(opts.workDir), 'static');
  const started: StartedProcess[] = [];
  const log = opts.log;

  try {
    const backend = await startProcess({
      name: 'backend',
      cmd: pythonBin(),
      args: [demoFile('backend.py'), String(ports.backend)],
      env: { OTEL_SERVICE_NAME: 'backend', PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' },
      port: ports.backend,
      log,
    });
    started.push(backend);

    const frontend = await startProcess({
      name: 'frontend',
      cmd: process.execPath,
      args: [demoFile('frontend.mjs'), String(ports.frontend)],
      env: { OTEL_SERVICE_NAME: 'frontend', BACKEND_URL: `http://127.0.0.1:${ports.backend}`, NODE_OPTIONS: undefined },
      port: ports.frontend,
      log,
    });
    started.push(frontend);

    writeStaticRoot(staticRoot);
    const conf = writeNginxConfig({ listenPort: ports.proxy, upstreamPort: ports.frontend, prefix: nginxPrefix, staticRoot });
    const nginx = await startProcess({ name: 'nginx', cmd: conf.cmd, args: conf.args, port: ports.proxy, log });
    started.push(nginx);

    // With daemon off the process we spawned is the master; it writes the pid file, then forks workers.
    const nginxPids = await waitFor('nginx pid file and worker', () => {
      let pidInFile = 0;
      try {
        pidInFile = Number(readFileSync(conf.pid, 'utf8').trim());
      } catch {
        return undefined;
      }
      if (pidInFile !== nginx.pid) return undefined;
      const workers = childPids(nginx.pid);
      return workers.length >= 1 ? [nginx.pid, ...workers.sort((a, b) => a - b)] : undefined;
    }, 5000, 25);

    const stop = async (): Promise<void> => {
      // Front to back, so no tier sees its callee vanish under an in-flight request.
      await nginx.stop();
      await frontend.stop();
      await backend.stop();
    };
    return { ports, backend, frontend, nginx, nginxPids, staticRoot, nginxPrefix, stop };
  } catch (err) {
    await stopAll(started.reverse());
    throw err;
  }
}
