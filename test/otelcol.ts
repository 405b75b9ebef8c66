// A real OpenTelemetry Collector for the tests, built from source with the official collector
// builder (ocb, go.opentelemetry.io/collector/cmd/builder) and cached by manifest: the first
// call of a fresh machine builds it (about 3-6 minutes cold on 2 cores, most of it compiling
// the contrib modules; module downloads ~250 MB), every later call returns the cached binary at
// once. Concurrent callers (node --test runs test files in parallel processes) never corrupt
// the cache: one builds under a lock directory into a temp dir and renames the finished binary
// into place; the others wait for it.
//
// Components (the names this release registers; the old names below still load as aliases):
//   receivers   otlp (gRPC + HTTP)
//   processors  batch, memory_limiter, k8s_attributes (alias k8sattributes)
//   exporters   otlp_grpc (alias otlp), otlp_http (alias otlphttp),
//               prometheus_remote_write (alias prometheusremotewrite), file, debug
//
// Why release v0.160.0 (core v1.66.0 for the stable modules): every module must be at one
// release, and the Go module proxy serves k8sattributesprocessor up to v0.160.0 only.
// Why the build steps are not a plain `builder --config`: ocb's `go mod tidy` also resolves the
// test imports of every component, and fileexporter's tests import otlpencodingextension at a
// version the proxy does not serve (403). So ocb generates the sources (its own go.mod
// included; the tidy step fails after writing it), `go mod tidy -e` completes go.mod past that
// test-only import, and `go build` compiles what ocb generated: the same binary ocb would make.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, isAlive, sleep, spawnChild, type Child } from '../src/proc/index.js';

const RELEASE = 'v0.160.0';
const STABLE = 'v1.66.0';
const CONTRIB = 'github.com/open-telemetry/opentelemetry-collector-contrib';
const CORE = 'go.opentelemetry.io/collector';

/** ocb's build configuration (output_path is added per build) */
export const OTELCOL_MANIFEST = `dist:
  module: osprey.test/otelcol
  name: otelcol-osprey
  description: OpenTelemetry Collector for Osprey's tests
receivers:
  - gomod: ${CORE}/receiver/otlpreceiver ${RELEASE}
processors:
  - gomod: ${CORE}/processor/batchprocessor ${RELEASE}
  - gomod: ${CORE}/processor/memorylimiterprocessor ${RELEASE}
  - gomod: ${CONTRIB}/processor/k8sattributesprocessor ${RELEASE}
exporters:
  - gomod: ${CORE}/exporter/debugexporter ${RELEASE}
  - gomod: ${CORE}/exporter/otlpexporter ${RELEASE}
  - gomod: ${CORE}/exporter/otlphttpexporter ${RELEASE}
  - gomod: ${CONTRIB}/exporter/fileexporter ${RELEASE}
  - gomod: ${CONTRIB}/exporter/prometheusremotewriteexporter ${RELEASE}
providers:
  - gomod: ${CORE}/confmap/provider/envprovider ${STABLE}
  - gomod: ${CORE}/confmap/provider/fileprovider ${STABLE}
  - gomod: ${CORE}/confmap/provider/yamlprovider ${STABLE}
`;

const CACHE = resolve('node_modules', '.cache', 'osprey-otelcol');
const GO = existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go';

function sh(cmd: string, args: string[], cwd: string, env: Record<string, string>, timeoutMs: number): Promise<string> {
  return new Promise((res, rej) => {
    execFile(cmd, args, { cwd, env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) rej(new Error(`${cmd} ${args.join(' ')} failed in ${cwd}: ${err.message}\n${stderr.slice(-4000)}`, { cause: err }));
      else res(stdout + stderr);
    });
  });
}

function goVersion(): Promise<string> {
  return sh(GO, ['env', 'GOVERSION'], '/', { GOTOOLCHAIN: 'local' }, 30_000).then((s) => s.trim());
}

async function build(out: string): Promise<void> {
  const t0 = Date.now();
  mkdirSync(CACHE, { recursive: true });
  const tmp = await mkdtemp(join(CACHE, 'build-'));
  try {
    const env = { GOTOOLCHAIN: 'local', CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false', GOBIN: join(tmp, 'bin') };
    await sh(GO, ['install', `${CORE}/cmd/builder@${RELEASE}`], tmp, env, 600_000);
    const src = join(tmp, 'src');
    writeFileSync(join(tmp, 'manifest.yaml'), OTELCOL_MANIFEST.replace('dist:\n', `dist:\n  output_path: ${src}\n`));
    // generates main.go, components.go and go.mod, then runs `go mod tidy`, which fails on
    // fileexporter's test-only import (see the top of this file): tolerated when go.mod exists
    try {
      await sh(join(tmp, 'bin', 'builder'), ['--config', join(tmp, 'manifest.yaml'), '--skip-compilation'], tmp, env, 900_000);
    } catch (err) {
      if (!existsSync(join(src, 'go.mod')) || !existsSync(join(src, 'components.go'))) throw err;
    }
    await sh(GO, ['mod', 'tidy', '-e'], src, env, 900_000);
    await sh(GO, ['build', '-trimpath', '-ldflags=-s -w', '-o', join(tmp, 'otelcol'), '.'], src, env, 1_800_000);
    await sh(join(tmp, 'otelcol'), ['components'], tmp, {}, 60_000);
    renameSync(join(tmp, 'otelcol'), out);
    process.stderr.write(`otelcol: built ${out} in ${Math.round((Date.now() - t0) / 1000)} s\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** a lock held by a live process (pid in the lock dir); a dead holder's lock is taken over */
function tryLock(lock: string): boolean {
  try {
    mkdirSync(lock);
    writeFileSync(join(lock, 'pid'), String(process.pid));
    return true;
  } catch {
    let pid = 0;
    try {
      pid = Number(readFileSync(join(lock, 'pid'), 'utf8'));
    } catch {
      // being written right now: treat as held, unless it is old
      try {
        if (Date.now() - statSync(lock).mtimeMs < 10_000) return false;
      } catch {
        return false;
      }
    }
    if (pid > 0 && isAlive(pid)) return false;
    rmSync(lock, { recursive: true, force: true });
    return false; // retried by the caller's loop
  }
}

let pending: Promise<string> | undefined;

/** The collector binary, built now unless cached. The first build on a machine takes minutes. */
export function otelcolBinary(): Promise<string> {
  pending ??= (async () => {
    const hash = createHash('sha256').update(OTELCOL_MANIFEST).update(await goVersion()).digest('hex').slice(0, 16);
    const out = join(CACHE, hash, 'otelcol-osprey');
    const lock = join(CACHE, `${hash}.lock`);
    mkdirSync(join(CACHE, hash), { recursive: true });
    const deadline = Date.now() + 40 * 60_000;
    while (!existsSync(out)) {
      if (tryLock(lock)) {
        try {
          if (!existsSync(out)) await build(out);
        } finally {
          rmSync(lock, { recursive: true, force: true });
        }
      } else {
        if (Date.now() > deadline) throw new Error(`otelcol: gave up waiting for another process's build (lock ${lock})`);
        await sleep(1000);
      }
    }
    return out;
  })();
  pending.catch(() => {
    pending = undefined; // a failed build is retried by the next call
  });
  return pending;
}

// ---- running it -------------------------------------------------------------------------

export interface OtelcolPorts {
  /** OTLP/gRPC receiver */
  grpc: number;
  /** OTLP/HTTP receiver */
  http: number;
}

export interface Otelcol {
  readonly child: Child;
  readonly ports: OtelcolPorts;
  /** a scratch directory for this collector (file exporter output, the config) */
  readonly dir: string;
  /** http://127.0.0.1:<http port> */
  readonly httpEndpoint: string;
  /** http://127.0.0.1:<grpc port> */
  readonly grpcEndpoint: string;
  /** SIGTERM (the collector drains its pipelines and flushes the file exporter), SIGKILL after 10 s */
  stop(): Promise<void>;
  /** what it logged (stderr) */
  log(): string;
}

export interface StartOtelcolOptions {
  /** reuse these ports (e.g. a restart on the same port); free ones otherwise */
  ports?: Partial<OtelcolPorts>;
  /** reuse this scratch directory (a restart that appends to the same files) */
  dir?: string;
  /** keep the collector's own telemetry (default off: its :8888 would clash between collectors) */
  telemetry?: boolean;
  log?: (line: string) => void;
}

/**
 * Starts the collector with `config` (YAML; a function gets the ports and the scratch dir to
 * fill in) and resolves once it has started all pipelines. Bind the OTLP receiver to
 * 127.0.0.1:<ports.grpc> and 127.0.0.1:<ports.http>.
 */
export async function startOtelcol(
  config: string | ((ports: OtelcolPorts, dir: string) => string),
  opts: StartOtelcolOptions = {},
): Promise<Otelcol> {
  const bin = await otelcolBinary();
  const ports: OtelcolPorts = { grpc: opts.ports?.grpc ?? (await freePort()), http: opts.ports?.http ?? (await freePort()) };
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'osprey-otelcol-')));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, typeof config === 'string' ? config : config(ports, dir));
  const args = ['--config', file];
  if (!opts.telemetry) args.push('--set=service.telemetry.metrics.level=none');
  const child = await spawnChild(bin, args, { name: 'otelcol', stopSignal: 'SIGTERM', stopGraceMs: 10_000, log: opts.log, keepBytes: 1 << 20 });
  try {
    await child.waitForOutput('stderr', /Everything is ready/, 60_000);
  } catch (err) {
    await child.stop();
    throw err;
  }
  return {
    child,
    ports,
    dir,
    httpEndpoint: `http://127.0.0.1:${ports.http}`,
    grpcEndpoint: `http://127.0.0.1:${ports.grpc}`,
    stop: () => child.stop(),
    log: () => child.stderr(),
  };
}

/** `otelcol validate` of a YAML config: resolves on success, rejects with the collector's message */
export async function validateOtelcolConfig(yaml: string): Promise<void> {
  const bin = await otelcolBinary();
  const dir = await mkdtemp(join(tmpdir(), 'osprey-otelcol-validate-'));
  try {
    writeFileSync(join(dir, 'config.yaml'), yaml);
    await sh(bin, ['validate', '--config', join(dir, 'config.yaml')], dir, {}, 60_000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The records a file exporter wrote (format json: one OTLP/JSON export request a line). A line
 * being written right now (no newline yet) is left for the next read.
 */
export function readFileExport<T = unknown>(path: string): T[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  const lines = text.split('\n');
  lines.pop();
  return lines.filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as T);
}
