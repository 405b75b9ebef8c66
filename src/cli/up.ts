// `osprey up`: agent + store + HTTP API in one process. The listener opens only
// once the probes are attached, so an answered query means capture is live.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { accessSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { Agent } from '../agent/agent.js';
import type { UprobeWatcherCounters } from '../agent/tls/index.js';
import { goRuntimeMetricFamilies, goRuntimeStatus } from '../agent/golang/runtime-status.js';
import { KERNEL_COUNTERS } from '../kernel/index.js';
import { MetricsGenerator } from '../metrics/generator.js';
import { exposition, type MetricFamily } from '../metrics/prometheus.js';
import { ExportConfigError, resolveExportConfig, type ExportConfig } from '../export/config.js';
// the exporter (OTLP encoders, gRPC) is loaded only when exporting: import() below
import type { Exporter } from '../export/index.js';
import type { Span } from '../model/index.js';
import { startServer } from '../server/server.js';
import { setupKubernetes, type KubernetesSetup } from '../resource/setup.js';
// DuckDB is loaded only when the store is on (not in export-only mode): import() below
import type { DuckStore } from '../store/index.js';
import { intOption, parseDuration, untilSignal, UsageError, type Command } from './cli.js';
import { LiveSummary } from './live.js';
import { BackgroundPriority } from '../proc/background-priority.js';
import { uiPage } from './ui-page.js';
import { defaultUiDir } from '../server/ui.js';
import type { OtlpGrpcReceiver } from '../server/otlp-grpc.js';
import { OTLP_GRPC_HELP, parseOtlpGrpcFlag, startOtlpGrpcFor, withOtlpGrpc } from './up-otlp-grpc.js';
import { SelfMemory } from './self-memory.js';

export function defaultDataDir(): string {
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'osprey');
}

export function parseListen(v: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(v);
  if (!m) throw new UsageError(`--listen must be HOST:PORT such as 127.0.0.1:7070, got "${v}"`);
  const port = Number(m[3]);
  if (port > 65535) throw new UsageError(`--listen port must be 0-65535, got ${port}`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

/** --data DIR: created if missing, and writable, or a message naming the cause and a fix */
export function prepareDataDir(dir: string): void {
  const fail = (why: string): never => {
    throw Object.assign(new Error(`cannot use --data ${dir}: ${why}`), {
      hint: 'pass --data with a writable directory, or keep spans in memory with --memory',
    });
  };
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EEXIST') fail('it is a file, not a directory');
    if (e.code === 'ENOTDIR') fail('a part of the path is a file, not a directory');
    // a recursive mkdir on a read-only file system says ENOENT: ask the deepest existing parent
    let parent = resolve(dir);
    while (!existsSync(parent) && dirname(parent) !== parent) parent = dirname(parent);
    try {
      accessSync(parent, constants.W_OK);
    } catch (err2) {
      fail(`${errnoWords(err2 as NodeJS.ErrnoException)} (${parent})`);
    }
    fail(errnoWords(e));
  }
  if (!statSync(dir).isDirectory()) fail('it is a file, not a directory');
  try {
    accessSync(dir, constants.W_OK);
  } catch (err) {
    fail(errnoWords(err as NodeJS.ErrnoException));
  }
}

function errnoWords(e: NodeJS.ErrnoException): string {
  switch (e.code) {
    case 'EROFS':
      return 'read-only file system';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'ENOENT':
      return 'no such file or directory';
    default:
      return e.message;
  }
}

export const upCommand: Command = {
  name: 'up',
  summary:
    'Run agent, store and query server in one process: every HTTP request of every process on\nthis machine becomes a span, queryable within seconds. Ctrl-C flushes and exits.',
  usage: 'osprey up [--data DIR] [--listen HOST:PORT] [--otlp-grpc HOST:PORT|off] [--demo] [--no-ui] [--export URL] [--no-store] [--kubeconfig PATH] [--node-name NAME]',
  help: [
    `      --data DIR            where spans are stored (default ${defaultDataDir()})`,
    '      --memory              keep spans in memory only',
    '      --store-memory SIZE   memory the store may use, e.g. 256MB or 1GB (default 128MB with a',
    '                            data dir, where the rest stays on disk; with --memory, DuckDB\'s',
    '                            default of 80% of RAM, and the spans themselves must fit)',
    '      --store-wal on|off    the store file\'s write-ahead log (default off: spans reach the file at',
    '                            checkpoints, at least every --store-sync, so a crash of osprey (kill -9,',
    '                            OOM) loses at most that much; a normal stop loses nothing. on: every',
    '                            batch flushed (each second) survives a crash, for ~4 µs more CPU per',
    '                            request. osprey status shows store_spansUnsynced)',
    '      --store-sync DUR      without the write-ahead log, the longest a stored span waits to be',
    '                            written into the store file (default 30s; shorter costs more CPU',
    '                            below ~4k spans/s, where a row group is compressed more than once)',
    '      --store-threads N     threads DuckDB may use for the store (default 1: storing a span then',
    '                            costs ~15-20% less CPU; more make the heaviest queries faster on',
    '                            idle cores)',
    '      --listen HOST:PORT    HTTP API, Tempo API, OTLP/HTTP receiver (/v1/traces) and UI (default 127.0.0.1:7070)',
    ...OTLP_GRPC_HELP,
    '      --demo                also start demo services (Node, Python, nginx) with traffic',
    '      --no-ui               do not serve the web UI at /',
    '      --retention DUR       drop spans older than this (default 24h)',
    '      --max-spans N         keep at most N spans (default 5000000)',
    '      --capture-size BYTES  payload bytes captured per call (default 256)',
    '      --summarize on|off    HTTP/1 exchanges summarised in the kernel, one record each (default on;',
    '                            off sends every socket call to user space, as `osprey events` shows them)',
    '      --tls on|off          HTTPS plaintext through uprobes on OpenSSL (libssl, programs that carry',
    '                            it, e.g. node) and Go crypto/tls (default on; osprey status lists the',
    '                            files probed and why others are not)',
    '      --uprobe-linger DUR   how long a file no process maps any more keeps its uprobes (default 5m),',
    '                            so short-lived processes (curl in a loop, cron jobs) are covered from',
    '                            their start; 0s takes them off as soon as the last process is gone',
    '      --runtime-context on|off  the goroutine of each call of Go programs, through uprobes on the Go',
    '                            runtime and net/http, so calls made for a request under concurrency link',
    '                            to it (default on; osprey status lists the executables probed)',
    '      --node-context on|off which request a Node event loop\'s outgoing call serves, through uprobes',
    '                            on node\'s async bookkeeping (default on; needs uprobes: --tls off turns',
    '                            it off too). Off: such calls are linked only by the thread rule',
    '      --export URL          also send spans and RED/service-graph metrics as OTLP to this collector,',
    '                            e.g. http://localhost:4318 (OTLP/HTTP; /v1/traces and /v1/metrics are',
    '                            appended) or, with --export-protocol grpc, http://localhost:4317.',
    '                            Without it the standard OTEL_EXPORTER_OTLP_* variables apply',
    '                            (ENDPOINT, TRACES_ENDPOINT, METRICS_ENDPOINT, PROTOCOL, HEADERS,',
    '                            COMPRESSION, TIMEOUT; OTEL_TRACES_EXPORTER/OTEL_METRICS_EXPORTER=none)',
    '      --export-protocol P   http/protobuf (default) or grpc',
    '      --export-queue SIZE   spans waiting for the collector, as compressed OTLP (default 256MiB:',
    '                            2.7-5.7 M spans at 47-100 bytes each, a 5-minute collector outage at',
    '                            5k spans/s with room to spare). Beyond it new spans are dropped and',
    '                            counted: osprey_export_dropped_spans_total{reason="queue_full"}',
    '      --no-store            export only (the Kubernetes DaemonSet mode): no span store, no DuckDB;',
    '                            /metrics and osprey status still answer. Needs --export or',
    '                            OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT',
    '      --kubeconfig PATH     Kubernetes metadata (pod, namespace, workload on every span) from this',
    '                            cluster; also on with KUBECONFIG set or in-cluster credentials present',
    '      --node-name NAME      the Kubernetes node this is: only its pods are watched (default',
    '                            $NODE_NAME, else the host name)',
    '      --background-nice N   nice value added to the agent\'s background threads (store compression,',
    '                            queries, GC): under contention, e.g. a CPU limit,',
    '                            the JS thread and the ring-buffer reader come first, so events are',
    '                            drained before compression runs (default 10; 0-19, 0 leaves them alone).',
    '                            Applications in other sessions or cgroups (autogroup, pods) are not',
    '                            affected: give those precedence with cgroup CPU weights or requests',
  ].join('\n'),
  options: {
    data: { type: 'string' },
    memory: { type: 'boolean' },
    'store-memory': { type: 'string' },
    'store-wal': { type: 'string' },
    'store-sync': { type: 'string' },
    'store-threads': { type: 'string' },
    listen: { type: 'string' },
    'otlp-grpc': { type: 'string' },
    demo: { type: 'boolean' },
    'no-ui': { type: 'boolean' },
    retention: { type: 'string' },
    'max-spans': { type: 'string' },
    'capture-size': { type: 'string' },
    summarize: { type: 'string' },
    tls: { type: 'string' },
    'runtime-context': { type: 'string' },
    'node-context': { type: 'string' },
    'uprobe-linger': { type: 'string' },
    export: { type: 'string' },
    'export-protocol': { type: 'string' },
    'export-queue': { type: 'string' },
    'no-store': { type: 'boolean' },
    kubeconfig: { type: 'string' },
    'node-name': { type: 'string' },
    'background-nice': { type: 'string' },
  },
  async run({ values }) {
    // every flag is checked before anything is created, opened or attached
    const listen = parseListen((values.listen as string | undefined) ?? '127.0.0.1:7070');
    if (isIP(listen.host) === 0) {
      await lookup(listen.host).catch(() => {
        throw new UsageError(`--listen host "${listen.host}" does not resolve; give an IP address or a known host name, e.g. 127.0.0.1:7070`);
      });
    }
    const retentionMs = Number(parseDuration((values.retention as string | undefined) ?? '24h') / 1_000_000n);
    if (retentionMs < 1000) throw new UsageError(`--retention must be at least 1s, got "${String(values.retention)}"`);
    const maxSpans = intOption(values['max-spans'], 'max-spans', 1) ?? 5_000_000;
    const captureSize = intOption(values['capture-size'], 'capture-size', 0, 4096);
    const summarize = values.summarize as string | undefined;
    if (summarize !== undefined && summarize !== 'on' && summarize !== 'off') throw new UsageError(`--summarize must be on or off, got "${summarize}"`);
    const tls = values.tls as string | undefined;
    if (tls !== undefined && tls !== 'on' && tls !== 'off') throw new UsageError(`--tls must be on or off, got "${tls}"`);
    const runtimeContext = values['runtime-context'] as string | undefined;
    if (runtimeContext !== undefined && runtimeContext !== 'on' && runtimeContext !== 'off') throw new UsageError(`--runtime-context must be on or off, got "${runtimeContext}"`);
    const nodeContext = values['node-context'] as string | undefined;
    if (nodeContext !== undefined && nodeContext !== 'on' && nodeContext !== 'off') throw new UsageError(`--node-context must be on or off, got "${nodeContext}"`);
    const backgroundNice = intOption(values['background-nice'], 'background-nice', 0, 19) ?? 10;
    const lingerMs = values['uprobe-linger'] === undefined ? undefined : Number(parseDuration(values['uprobe-linger'] as string) / 1_000_000n);
    const memory = values.memory === true;
    if (memory && values.data !== undefined) throw new UsageError('use either --data DIR or --memory, not both');
    const dataDir = (values.data as string | undefined) ?? defaultDataDir();
    if (dataDir === '') throw new UsageError('--data needs a directory');
    const storeMemory = values['store-memory'] as string | undefined;
    // One thread: DuckDB then runs the appends, checkpoints and queries on the threads that ask
    // for them (the JS thread for appends, libuv's pool otherwise) and starts no workers of its
    // own. With more, an append or a checkpoint of one row group (one task) kept a second thread
    // busy handing work over: bench/store-ingest.mjs 17.3 -> 14.0 µs of CPU per span (medians,
    // 5 alternated pairs; docs/benchmarks.md, session 11 `ckpt`), while searches over 1M spans
    // on this 2-core machine were no slower (heavy metrics queries were, up to ~1.5x).
    const storeThreads = intOption(values['store-threads'], 'store-threads', 1, 1024) ?? 1;
    const noStore = values['no-store'] === true;
    if (noStore && (values.data !== undefined || memory || storeMemory !== undefined || values['store-wal'] !== undefined || values['store-threads'] !== undefined)) {
      throw new UsageError('--no-store keeps no spans: leave out --data, --memory, --store-memory, --store-wal and --store-threads');
    }
    const storeWal = values['store-wal'] as string | undefined;
    if (storeWal !== undefined && storeWal !== 'on' && storeWal !== 'off') throw new UsageError(`--store-wal must be on or off, got "${storeWal}"`);
    if (storeWal !== undefined && memory) throw new UsageError('--store-wal is for a store file: --memory keeps nothing across a restart');
    const syncArg = values['store-sync'] as string | undefined;
    if (syncArg !== undefined && (memory || noStore || storeWal === 'on')) throw new UsageError('--store-sync is for a store file without --store-wal on');
    const syncMs = syncArg === undefined ? undefined : Number(parseDuration(syncArg) / 1_000_000n);
    if (syncMs !== undefined && syncMs < 1000) throw new UsageError(`--store-sync must be at least 1s, got "${syncArg}"`);
    let exportConfig: ExportConfig | undefined;
    try {
      exportConfig = resolveExportConfig({
        endpoint: values.export as string | undefined,
        protocol: values['export-protocol'] as string | undefined,
        queue: values['export-queue'] as string | undefined,
      });
    } catch (err) {
      if (err instanceof ExportConfigError) throw new UsageError(err.hint ? `${err.message} (${err.hint})` : err.message);
      throw err;
    }
    const otlpGrpc = parseOtlpGrpcFlag(values['otlp-grpc'] as string | undefined, noStore || exportConfig?.traces !== undefined, parseListen);
    if (noStore && !exportConfig?.traces) {
      throw new UsageError('--no-store needs somewhere to send spans: --export URL (or OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)');
    }
    const storeModule = noStore ? undefined : await import('../store/index.js');
    if (storeMemory !== undefined && storeModule?.parseMemoryLimit(storeMemory) === undefined) {
      throw new UsageError(`--store-memory must be a size like 256MB or 1GB, got "${storeMemory}"`);
    }
    const say = (s: string) => process.stderr.write(`osprey: ${s}\n`);
    const kubeFlags = { kubeconfig: values.kubeconfig as string | undefined, nodeName: values['node-name'] as string | undefined };
    if (kubeFlags.kubeconfig === '') throw new UsageError('--kubeconfig needs a file path');
    if (kubeFlags.nodeName === '') throw new UsageError('--node-name needs a node name');

    let path: string | undefined;
    let store: DuckStore | undefined;
    if (storeModule) {
      if (!memory) {
        prepareDataDir(dataDir);
        path = join(dataDir, 'spans.duckdb');
      }
      store = await storeModule.DuckStore.open({ path, memoryLimit: storeMemory, threads: storeThreads, wal: storeWal === 'on', checkpointIntervalMs: syncMs, retention: { maxAgeMs: retentionMs, maxSpans } }).catch((err: Error) => {
        throw Object.assign(new Error(`cannot open the span store at ${path}: ${err.message}`), {
          hint: /lock/i.test(err.message)
            ? 'another osprey is using this data dir: stop it or pass --data DIR'
            : /schema version/.test(err.message)
              ? `the data was written by another version of osprey: move ${dataDir} away (or pass --data DIR) to start afresh`
              : 'check the path and permissions, or use --memory',
        });
      });
      const sync = path === undefined ? '' : storeWal === 'on' ? ', write-ahead log on' : `, synced to the file every ${syncArg ?? '30s'} (--store-wal on: every second)`;
      say(`store: ${path ?? 'in memory'} (${store.stats().rows} spans kept, retention ${(values.retention as string | undefined) ?? '24h'}${sync})`);
    } else {
      say('store: none (--no-store: export only)');
    }

    // Kubernetes metadata comes up in the background: tracing does not wait for the API server
    let kube: KubernetesSetup | undefined;
    try {
      kube = await setupKubernetes(kubeFlags, say);
    } catch (err) {
      await store?.shutdown();
      throw err;
    }
    if (kube) {
      const s = kube.settings;
      say(`kubernetes: metadata from ${kube.metadata.status().server} (${s.source === 'flag' ? '--kubeconfig' : s.source}), pods of node ${s.nodeName} (from ${s.nodeFrom === 'flag' ? '--node-name' : s.nodeFrom})`);
    }

    const red = new MetricsGenerator().start();
    // the sink below gives both every span: the store's edge rollup takes /metrics' pairing
    store?.shareServiceGraph(red.serviceGraph);
    const exporter = exportConfig
      ? new (await import('../export/exporter.js')).Exporter({ config: exportConfig, metricFamilies: () => red.families(), log: say })
      : undefined;
    if (exporter) say(`export: ${exporter.describe()}`);
    // one sink for the agent's spans and those received over OTLP (POST /v1/traces)
    const sink = (spans: Span[]): void => {
      store?.append(spans);
      red.consume(spans);
      exporter?.consume(spans);
    };
    const agent = new Agent({
      ...(kube ? { enricher: kube.resources, peerAttributes: kube.peerAttributes } : {}),
      sink,
      capture: { captureSize, ...(summarize ? { summarize: summarize } : {}) },
      ...(tls === 'off' ? { uprobes: false as const } : {}),
      // both uprobe watchers (TLS, and the Go runtime's, which runs with --tls off too)
      ...(lingerMs !== undefined ? { uprobeLingerMs: lingerMs } : {}),
      ...(runtimeContext === 'off' ? { runtimeContext: false } : {}),
      ...(nodeContext === 'off' ? { nodeContext: false } : {}),
    });
    let cap;
    try {
      cap = agent.start();
    } catch (err) {
      await kube?.stop();
      await exporter?.shutdown();
      await store?.shutdown();
      throw err;
    }
    const attached = cap.programs.filter((p) => p.attached).length;
    say(`capture: ${attached}/${cap.programs.length} tracepoints attached (kernel ${cap.preflight.kernel}), every process but this one (pid ${process.pid})`);
    say(
      agent.uprobes
        ? 'tls: plaintext of OpenSSL and Go crypto/tls through uprobes, files probed as processes map them (osprey status lists them; --tls off to disable)'
        : 'tls: off (--tls off): HTTPS traffic is not traced',
    );
    say(
      agent.goRuntime
        ? 'runtime context: the goroutine of each call of Go programs, through uprobes (osprey status lists them; --runtime-context off to disable)'
        : 'runtime context: off (--runtime-context off): calls of Go services under concurrency are not linked to their requests',
    );
    say(
      agent.uprobes && nodeContext !== 'off'
        ? 'node context: uprobes on node follow which request an event loop\'s call serves (--node-context off to disable)'
        : 'node context: off: calls of Node services are linked by thread only',
    );
    for (const p of cap.programs.filter((p) => !p.attached)) say(`warning: ${p.tracepoint} not attached: ${p.error}`);

    const started = Date.now();
    let grpc: OtlpGrpcReceiver | undefined;
    // after the capture (its ring-buffer thread keeps its priority) and the store (DuckDB's threads)
    const background = backgroundNice > 0 ? new BackgroundPriority(backgroundNice) : undefined;
    background?.start();
    const selfMemory = new SelfMemory(store).start();
    const status = () =>
      withOtlpGrpc(
        {
          ...statusReport(agent, store, exporter, started),
          memory: selfMemory.report(),
          ...(kube ? { kubernetes: kube.status() } : {}),
          backgroundPriority: background ? { nice: background.nice, base: background.base, ...background.counters } : { nice: 'off' },
        },
        grpc,
      );
    let server;
    try {
      server = await startServer(
        {
          store,
          status,
          metrics: () => exposition([...metricFamilies(agent, store, red, exporter), ...kubeFamilies(kube), ...(grpc?.families() ?? [])]),
          ui: values['no-ui'] ? undefined : uiPage,
          uiDir: values['no-ui'] ? undefined : defaultUiDir(),
          observingSinceNs: BigInt(started) * 1_000_000n,
          ingest: sink,
        },
        listen,
      );
      // SDK spans over gRPC go to the same receiver, so to the same sink, limits and counters
      const http = server;
      grpc = await startOtlpGrpcFor(otlpGrpc, http.otlp, say).catch(async (err: unknown) => {
        await http.close();
        throw err;
      });
    } catch (err) {
      await agent.shutdown();
      await kube?.stop();
      await exporter?.shutdown();
      await store?.shutdown();
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EADDRINUSE') {
        throw Object.assign(new Error(`${listen.host}:${listen.port} is already in use`), { hint: 'another osprey up may be running; stop it or pass --listen HOST:PORT' });
      }
      throw err;
    }
    say(`listening on ${server.url} (${store ? 'API, Tempo API, ' : ''}OTLP/HTTP receiver /v1/traces, ${values['no-ui'] ? '' : 'UI, '}/metrics, /api/osprey/status)`);

    let demo: { stop(): Promise<void> } | undefined;
    if (values.demo) {
      const { startDemo } = await import('../demo/index.js');
      // the demo's own progress lines, not its services' chatter
      const d = await startDemo({ dataDir: join(memory ? defaultDataDir() : dataDir, 'demo-run'), log: (l) => l.startsWith('demo:') && say(l) });
      demo = d;
      say(`demo: open ${d.entryUrl} or watch: osprey services`);
    }
    if (store && !values['no-ui']) say(`web UI: ${server.url}/ (the slowest requests: Search, sort by Slowest)`);
    if (store) say(`try: osprey query --since 5m '{ duration > 100ms }'   osprey services   osprey graph`);
    else say('try: osprey status   (export counters: export_spans_*)');

    const live = store ? new LiveSummary(store, server.url, process.stdout.isTTY === true, started) : undefined;
    live?.start();

    const sig = await untilSignal();
    live?.stop();
    selfMemory.stop();
    background?.stop();
    say(`${sig}: stopping`);
    await demo?.stop().catch(() => undefined);
    await agent.shutdown();
    await kube?.stop();
    red.stop();
    // the agent has handed over its last spans: deliver them (a few seconds at most)
    await exporter?.shutdown();
    await grpc?.close();
    await server.close();
    await store?.shutdown();
    const c = agent.counters;
    if (exporter?.spans) say(`export: ${exporter.summary()}`);
    say(`stopped: ${c.spans} spans recorded this run${store ? `, ${store.stats().rows} kept in ${path ?? 'memory'}` : ''}`);
    return 0;
  },
};

function statusReport(agent: Agent, store: DuckStore | undefined, exporter: Exporter | undefined, started: number): Record<string, unknown> {
  const cap = agent.capture!;
  const k = cap.counters();
  const counters: Record<string, number> = { ...k };
  const add = (prefix: string, o: object) => {
    for (const [n, v] of Object.entries(o as Record<string, number>)) counters[`${prefix}_${n}`] = v;
  };
  add('agent', agent.counters);
  add('http1', agent.http1);
  add('http2', agent.http2);
  add('linker', agent.linker.counters);
  if (agent.uprobes) add('uprobe', agent.uprobes.counters);
  if (store) add('store', store.stats());
  if (exporter) Object.assign(counters, exporter.statusCounters());
  const up = (Date.now() - started) / 1000;
  return {
    agent: 'running',
    pid: process.pid,
    uptimeSeconds: Math.round(up),
    self: selfUsage(up),
    kernel: cap.preflight.kernel,
    tracefs: cap.preflight.tracefs,
    programs: cap.programs.map((p) => ({ tracepoint: p.tracepoint, attached: p.attached, error: p.error })),
    // files with TLS uprobes, and the ones that could not have them (stripped, errors, the bound)
    uprobes: agent.uprobes?.files() ?? [],
    // Go executables with runtime-context probes, their processes and counters (absent when off)
    goRuntime: goRuntimeStatus(agent.goRuntimeUprobes, agent.goRuntime),
    rates: {
      eventsPerSec: Math.round(agent.counters.events / Math.max(1, up)),
      spansPerSec: Math.round(agent.counters.spans / Math.max(1, up)),
    },
    counters,
    // how each traced process maps requests onto threads: why its calls are (not) thread-linked
    processes: [...agent.processes.list()].slice(-200).map((p) => ({
      pid: p.pid,
      service: p.serviceName,
      runtime: p.runtime.runtime,
      threadModel: agent.linker.modelOf(p.pid),
      evidence: agent.linker.modelOf(p.pid) === p.runtime.model ? p.runtime.evidence : 'learned from how it answers requests',
    })),
    maps: {
      conns: cap.mapEntries('conns'),
      socks: cap.mapEntries('socks'),
      not_tcp: cap.mapEntries('not_tcp'),
      agent_connections: agent.connections,
      linker_records: agent.linker.size,
      processes: agent.processes.size,
    },
  };
}

/** Kubernetes metadata: API errors, cache sizes, processes waiting for their pod */
function kubeFamilies(kube: KubernetesSetup | undefined): MetricFamily[] {
  if (!kube) return [];
  const st = kube.status();
  const one = (name: string, help: string, value: number, type: 'counter' | 'gauge'): MetricFamily => ({ name, help, type, samples: [{ value }] });
  return [
    one('osprey_kube_errors_total', 'Kubernetes API errors (lists, watches, owner lookups); informers retry with backoff.', st.counters.errors, 'counter'),
    one('osprey_kube_connected', '1 when every Kubernetes informer has synced and has no error since.', st.state === 'connected' ? 1 : 0, 'gauge'),
    one('osprey_kube_pods_cached', 'Pods of this node cached.', st.podsCached, 'gauge'),
    one('osprey_kube_services_cached', 'Services cached (ClusterIP to name).', st.servicesCached, 'gauge'),
    one('osprey_kube_relists_total', 'Full lists by the informers (first sync, 410 Gone, errors).', st.informers.pods!.lists + st.informers.services!.lists, 'counter'),
    one('osprey_kube_processes_waiting', 'Processes in a container whose pod is not known yet.', st.processes.waiting, 'gauge'),
  ];
}

/** TLS uprobes: files probed, and every way a file ended up without probes */
function uprobeFamilies(u: UprobeWatcherCounters): MetricFamily[] {
  return [
    {
      name: 'osprey_uprobe_files_total',
      help: 'Files met by the TLS uprobe watcher, by outcome (attached, detached, error, stripped, over_limit).',
      type: 'counter',
      samples: [
        { labels: { outcome: 'attached' }, value: u.files_attached },
        { labels: { outcome: 'detached' }, value: u.files_detached },
        { labels: { outcome: 'error' }, value: u.files_error },
        { labels: { outcome: 'stripped' }, value: u.files_stripped },
        { labels: { outcome: 'over_limit' }, value: u.files_over_limit },
      ],
    },
    { name: 'osprey_uprobe_attach_errors_total', help: 'Uprobes that failed to attach.', type: 'counter', samples: [{ value: u.attach_errors }] },
    { name: 'osprey_uprobe_files', help: 'Files with TLS uprobes attached now.', type: 'gauge', samples: [{ value: u.attached_now }] },
    { name: 'osprey_uprobe_probes', help: 'TLS uprobes attached now.', type: 'gauge', samples: [{ value: u.probes_now }] },
    { name: 'osprey_uprobe_files_lingering', help: 'Files keeping their TLS uprobes though no process maps them now (--uprobe-linger).', type: 'gauge', samples: [{ value: u.lingering_now }] },
    { name: 'osprey_uprobe_files_detaching', help: 'Files whose TLS uprobes are being detached (off the JS thread) now.', type: 'gauge', samples: [{ value: u.detaching_now }] },
    {
      name: 'osprey_uprobe_detached_total',
      help: 'Files whose TLS uprobes came off, by why: after lingering, to make room under the bound, or at once because another mount namespace or a deleted path held them.',
      type: 'counter',
      samples: [
        { labels: { reason: 'linger_expired' }, value: u.detached_after_linger },
        { labels: { reason: 'room' }, value: u.detached_for_room },
        { labels: { reason: 'not_on_own_root' }, value: u.detached_not_on_host },
      ],
    },
    {
      name: 'osprey_uprobe_reattach_waited_total',
      help: 'Files mapped again while their old uprobes were being detached: their new processes were not covered until the detach ended.',
      type: 'counter',
      samples: [{ value: u.reattach_waited }],
    },
  ];
}

/** what this process costs: CPU (all threads, so the store's DuckDB work too) and memory */
function selfUsage(upSeconds: number): Record<string, number> {
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return {
    cpuSeconds: Math.round(cpuSeconds * 1000) / 1000,
    cpuCoresAverage: Math.round((cpuSeconds / Math.max(1, upSeconds)) * 1000) / 1000,
    rssBytes: mem.rss,
    heapUsedBytes: mem.heapUsed,
    heapTotalBytes: mem.heapTotal,
    externalBytes: mem.external,
    arrayBuffersBytes: mem.arrayBuffers,
  };
}

function metricFamilies(agent: Agent, store: DuckStore | undefined, red: MetricsGenerator, exporter: Exporter | undefined): MetricFamily[] {
  const k = agent.capture!.counters();
  const fam = (name: string, help: string, value: number, type: 'counter' | 'gauge' = 'counter'): MetricFamily => ({
    name,
    help,
    type,
    samples: [{ value }],
  });
  const st = store?.stats();
  const cpu = process.cpuUsage();
  return [
    {
      name: 'osprey_kernel_total',
      help: 'Kernel-side counters of the capture programs (drops, truncations, connections).',
      type: 'counter',
      samples: KERNEL_COUNTERS.map((c) => ({ labels: { counter: c }, value: k[c] })),
    },
    fam('osprey_events_total', 'Kernel events decoded.', agent.counters.events),
    fam('osprey_spans_total', 'Spans produced by the agent.', agent.counters.spans),
    fam('osprey_ringbuf_dropped_total', 'Events lost because the ring buffer was full.', k.ringbuf_dropped),
    fam('osprey_agent_batches_dropped_total', 'Event batches dropped because the agent fell behind the kernel.', agent.counters.batches_dropped),
    fam('osprey_http1_malformed_total', 'HTTP/1 connections dropped from parsing as malformed.', agent.http1.malformed),
    fam('osprey_http1_desync_total', 'HTTP/1 connections dropped after losing message framing.', agent.http1.desync),
    fam('osprey_http2_malformed_total', 'HTTP/2 connections dropped from parsing as malformed.', agent.http2.malformed),
    fam('osprey_http2_header_blocks_unknown_total', 'HTTP/2 header blocks not decoded because the HPACK state was unknown.', agent.http2.headerBlocksUnknown),
    fam('osprey_connections', 'Connections the agent tracks.', agent.connections, 'gauge'),
    fam('osprey_linker_evicted_total', 'In-flight requests dropped by the linker limits.', agent.linker.counters.evicted),
    fam('osprey_linker_withheld_loss_total', 'Parent links left out because events were lost around them.', agent.linker.counters.withheld_loss),
    ...(agent.uprobes ? uprobeFamilies(agent.uprobes.counters) : []),
    ...goRuntimeMetricFamilies(agent.goRuntimeUprobes, agent.goRuntime),
    ...(st
      ? [
          fam('osprey_store_spans_dropped_total', 'Spans the store could not keep.', st.spansDropped),
          fam('osprey_store_retention_deleted_total', 'Spans deleted by retention.', st.retentionDeletedSpans),
          fam('osprey_store_rows', 'Spans stored.', st.rows, 'gauge'),
          fam('osprey_store_spans_unsynced', 'Spans stored but not yet in the store file (no write-ahead log): what a crash of osprey would lose.', st.spansUnsynced, 'gauge'),
          fam('osprey_store_checkpoints_total', 'Checkpoints of the store (committed spans written into its file).', st.checkpoints),
          fam('osprey_store_checkpoint_errors_total', 'Checkpoints of the store that failed (retried).', st.checkpointErrors),
          // commits wait for a checkpoint: its duration is how long new spans queue in the buffer
          fam('osprey_store_last_checkpoint_seconds', 'Duration of the last checkpoint of the store (commits wait for it), seconds.', st.lastCheckpointMs / 1e3, 'gauge'),
        ]
      : []),
    // the usual names of Prometheus client libraries' process collectors
    fam('process_cpu_seconds_total', 'User and system CPU time of the osprey process (all threads), seconds.', (cpu.user + cpu.system) / 1e6),
    fam('process_resident_memory_bytes', 'Resident memory of the osprey process, bytes.', process.memoryUsage.rss(), 'gauge'),
    ...red.families(),
    ...(exporter?.families() ?? []),
  ];
}
