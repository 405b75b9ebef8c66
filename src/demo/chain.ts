// End-to-end test fixture: nginx -> node frontend -> python backend, all real and unmodified.
// GET /chain/<anything> on the proxy reaches the frontend at /chain/<anything>, which calls the
// backend at the same /chain/<anything> (query included): the unique path is ground truth across
// all three hops. ?sleep=N makes the backend sleep N ms. Start-up sends no HTTP requests.
import { startStack } from './stack.js';

export interface ChainOptions {
  /** Working directory: nginx's prefix goes to <dataDir>/nginx, static files to <dataDir>/static. */
  dataDir: string;
  /** Fixed ports (proxy = basePort, frontend = +1, backend = +2); default free ports. */
  basePort?: number;
  /** Receives the services' stdout/stderr lines. */
  log?: (line: string) => void;
}

export interface Chain {
  proxyPort: number;
  frontendPort: number;
  backendPort: number;
  /** http://127.0.0.1:<proxyPort> */
  proxyUrl: string;
  pids: {
    /** nginx master first, then its worker(s). */
    nginx: number[];
    node: number;
    python: number;
  };
  /** nginx serves this directory at /static/ (index.html, big.txt of 256 KiB) with sendfile. */
  staticRoot: string;
  /** Stops every process of the chain (idempotent, never rejects). */
  stop(): Promise<void>;
}

export async function startChain(opts: ChainOptions): Promise<Chain> {
  const stack = await startStack({ workDir: opts.dataDir, basePort: opts.basePort, log: opts.log });
  return {
    proxyPort: stack.ports.proxy,
    frontendPort: stack.ports.frontend,
    backendPort: stack.ports.backend,
    proxyUrl: `http://127.0.0.1:${stack.ports.proxy}`,
    pids: { nginx: stack.nginxPids, node: stack.frontend.pid, python: stack.backend.pid },
    staticRoot: stack.staticRoot,
    stop: () => stack.stop(),
  };
}
