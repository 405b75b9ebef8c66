// The demo: real, unmodified services for Osprey to trace, plus a load generator.
//   loadgen (node demo/loadgen.mjs) -> nginx :proxy -> frontend (node demo/frontend.mjs) -> backend (python3 demo/backend.py)
// The services know nothing about tracing; they only carry OTEL_SERVICE_NAME in their environment.
import { join, resolve } from 'node:path';
import { startProcess, type StartedProcess } from '../proc/index.js';
import { demoFile, startStack } from './stack.js';

export { startChain, type Chain, type ChainOptions } from './chain.js';
export { nginxConfig, type NginxOptions } from './nginx.js';
export { freePort, isAlive, startProcess, type StartedProcess, type StartProcessOptions } from '../proc/index.js';

export interface DemoOptions {
  /** Receives progress lines and the services' stdout/stderr lines. */
  log?: (line: string) => void;
  /** Fixed ports: proxy = basePort, frontend = basePort + 1, backend = basePort + 2. Default: free ports. */
  basePort?: number;
  /** Osprey's data dir; the demo works in <dataDir>/demo (nginx prefix, static files). */
  dataDir: string;
  /** Run the load generator (default true). */
  traffic?: boolean;
  /** Load generator requests per second (default 20). */
  rate?: number;
}

export interface DemoService {
  name: string;
  pid: number;
  url: string;
}

export interface Demo {
  /** backend, frontend, nginx (master pid) — in call order from the back. */
  services: DemoService[];
  /** The load generator process, when traffic is on. */
  loadgen: { name: 'loadgen'; pid: number } | null;
  /** The proxy: http://127.0.0.1:<port>/ */
  entryUrl: string;
  /** Stops the load generator (it prints its summary to log), then the services. Idempotent. */
  stop(): Promise<void>;
}

export async function startDemo(opts: DemoOptions): Promise<Demo> {
  const log = opts.log;
  const stack = await startStack({ workDir: join(resolve(opts.dataDir), 'demo'), basePort: opts.basePort, log });
  const entryUrl = `http://127.0.0.1:${stack.ports.proxy}/`;

  let loadgen: StartedProcess | undefined;
  if (opts.traffic ?? true) {
    try {
      loadgen = await startProcess({
        name: 'loadgen',
        cmd: process.execPath,
        args: [demoFile('loadgen.mjs'), '--url', entryUrl, '--rate', String(opts.rate ?? 20)],
        env: { OTEL_SERVICE_NAME: 'loadgen', NODE_OPTIONS: undefined },
        log,
      });
    } catch (err) {
      await stack.stop();
      throw err;
    }
  }

  const services: DemoService[] = [
    { name: 'backend', pid: stack.backend.pid, url: `http://127.0.0.1:${stack.ports.backend}/` },
    { name: 'frontend', pid: stack.frontend.pid, url: `http://127.0.0.1:${stack.ports.frontend}/` },
    { name: 'nginx', pid: stack.nginx.pid, url: entryUrl },
  ];
  for (const s of services) log?.(`demo: ${s.name} pid ${s.pid} at ${s.url}`);
  if (loadgen) log?.(`demo: loadgen pid ${loadgen.pid} sending ${opts.rate ?? 20} req/s to ${entryUrl}`);

  let stopping: Promise<void> | undefined;
  return {
    services,
    loadgen: loadgen ? { name: 'loadgen', pid: loadgen.pid } : null,
    entryUrl,
    stop: () =>
      (stopping ??= (async () => {
        await loadgen?.stop();
        await stack.stop();
      })()),
  };
}
