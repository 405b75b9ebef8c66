// `osprey up` and the read commands as a user drives them: real processes,
// real curl, the CLI's public JSON, SIGINT, restart on the same data.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, OSPREY, ospreyUp as up, run, sleep, startServer, waitFor, type OspreyUp, type Proc } from './helpers.js';

describe('osprey up', { timeout: 180_000 }, () => {
  let agent: OspreyUp;
  let py: Proc;
  let pyPort: number;
  const data = mkdtempSync(join(tmpdir(), 'osprey-data-'));
  const path = `/up-test/${Date.now()}`;
  let traceId = '';

  before(async () => {
    const port = await freePort();
    agent = await up(['--data', data, '--listen', `127.0.0.1:${port}`, '--no-ui']);
    pyPort = await freePort();
    py = await startServer('python3', ['-m', 'http.server', String(pyPort), '--bind', '127.0.0.1'], pyPort);
  });
  after(async () => {
    await py?.stop();
    if (agent && !agent.child.exited) await agent.stop();
  });

  it('a finished request is queryable within 5 s as span JSON', async () => {
    const c = await run('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${pyPort}${path}?token=s3cret&x=1`]);
    assert.equal(c.code, 0);
    const t0 = Date.now();
    let lines: Record<string, unknown>[] = [];
    while (Date.now() - t0 < 5000 && lines.length < 2) {
      const q = await run(OSPREY, ['query', '--server', agent.url, '--json', '--since', '1m', `{ span.url.path = "${path}" }`]);
      assert.equal(q.code, 0, q.stderr);
      lines = q.stdout.trim() ? q.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>) : [];
      if (lines.length < 2) await sleep(200);
    }
    const waited = Date.now() - t0;
    assert.equal(lines.length, 2, `server and client span within 5 s (waited ${waited} ms)`);
    const server = lines.find((s) => s.kind === 'server')!;
    const client = lines.find((s) => s.kind === 'client')!;
    for (const s of [server, client]) {
      assert.match(s.traceId as string, /^[0-9a-f]{32}$/);
      assert.match(s.spanId as string, /^[0-9a-f]{16}$/);
      assert.match(s.startTimeUnixNano as string, /^\d{19}$/);
      assert.equal(typeof s.durationNano, 'number');
      // 404: an error for the client, not for the server (semantic conventions)
      assert.equal(s.status, s.kind === 'client' ? 'error' : 'unset');
      assert.equal(s.name, 'GET /up-test/{id}');
      const res = s.resource as Record<string, unknown>;
      assert.equal(typeof res['process.pid'], 'number');
      const attrs = s.attributes as Record<string, unknown>;
      assert.equal(attrs['url.path'], path);
      assert.equal(attrs['url.query'], 'token=REDACTED&x=1');
      assert.equal(attrs['http.response.status_code'], 404);
    }
    assert.equal(server.parentSpanId, client.spanId);
    assert.equal(server.traceId, client.traceId);
    assert.equal((server.resource as Record<string, unknown>)['process.pid'], py.pid);
    assert.equal((server.resource as Record<string, unknown>)['service.name'], 'http');
    assert.equal((client.attributes as Record<string, unknown>)['url.full'], `http://127.0.0.1:${pyPort}${path}?token=REDACTED&x=1`);
    traceId = server.traceId as string;
  });

  it('trace, services, graph, status and the Tempo API answer', async () => {
    const t = await run(OSPREY, ['trace', '--server', agent.url, traceId]);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /^curl client GET \/up-test\/\{id\} 404 .*\n└─ http server GET \/up-test\/\{id\} 404 .*\[tuple\]/);
    const s = await run(OSPREY, ['services', '--server', agent.url, '--json']);
    const services = JSON.parse(s.stdout) as { service: string; requestCount: number }[];
    assert.ok(services.some((x) => x.service === 'http' && x.requestCount >= 1));
    const g = await run(OSPREY, ['graph', '--server', agent.url, '--json']);
    const edges = JSON.parse(g.stdout) as { caller: string; callee: string; count: number }[];
    assert.ok(edges.some((e) => e.caller === 'curl' && e.callee === 'http' && e.count >= 1), g.stdout);
    const st = await run(OSPREY, ['status', '--server', agent.url, '--json']);
    const status = JSON.parse(st.stdout) as { agent: string; programs: { attached: boolean }[]; counters: Record<string, number> };
    assert.equal(status.agent, 'running');
    assert.ok(status.programs.length >= 20 && status.programs.every((p) => p.attached));
    for (const k of ['ringbuf_dropped', 'payload_truncated', 'http1_malformed', 'linker_evicted', 'store_spansDropped', 'store_spansUnsynced', 'store_checkpoints']) assert.ok(k in status.counters, k);
    // what the agent itself costs
    const self = (status as unknown as { self: { cpuSeconds: number; rssBytes: number; heapUsedBytes: number } }).self;
    assert.ok(self.cpuSeconds > 0 && self.rssBytes > 20 * 2 ** 20 && self.heapUsedBytes > 0, JSON.stringify(self));
    // each traced process with its thread model: the python server of the first test is one
    const procs = (status as unknown as { processes: { pid: number; runtime: string; threadModel: string }[] }).processes;
    const pyProc = procs.find((p) => p.pid === py.pid);
    assert.ok(pyProc, JSON.stringify(procs));
    assert.equal(pyProc.runtime, 'python');
    assert.equal(pyProc.threadModel, 'per-request');
    const text = await run(OSPREY, ['status', '--server', agent.url]);
    assert.match(text.stdout, /cost: +[\d.]+ cores on average \([\d.]+ s of CPU\), RSS \d+ MB/);
    assert.match(text.stdout, /priority: \d+ background threads at nice 10 \(the agent's own 0 \+ 10; after the JS thread/);
    assert.match(text.stdout, new RegExp(`\\n  ${py.pid} +\\S+ +python +per-request `));

    // an exact count over a window (services() counts whole rollup minutes)
    const count = (await (await fetch(`${agent.url}/api/osprey/count?q=${encodeURIComponent(`{ span.url.path = "${path}" }`)}`)).json()) as { count: number };
    assert.equal(count.count, 2);
    const none = (await (await fetch(`${agent.url}/api/osprey/count?q=${encodeURIComponent(`{ span.url.path = "${path}" && kind = consumer }`)}`)).json()) as { count: number };
    assert.equal(none.count, 0);
    const search = (await (await fetch(`${agent.url}/api/search?q=${encodeURIComponent(`{ span.url.path = "${path}" }`)}`)).json()) as {
      traces: { traceID: string; rootServiceName: string }[];
    };
    assert.equal(search.traces[0]?.traceID, traceId);
    assert.equal(search.traces[0]?.rootServiceName, 'curl');
    const tr = (await (await fetch(`${agent.url}/api/traces/${traceId}`)).json()) as { batches: unknown[] };
    assert.equal(tr.batches.length, 2);
    assert.equal((await fetch(`${agent.url}/api/traces/${'0'.repeat(31)}1`)).status, 404);
    const metrics = await (await fetch(`${agent.url}/metrics`)).text();
    assert.match(metrics, /osprey_ringbuf_dropped_total 0/);
    assert.match(metrics, /^process_resident_memory_bytes \d+/m);
    assert.match(metrics, /^process_cpu_seconds_total [\d.]+/m);
    assert.match(metrics, /^osprey_uprobe_detached_total\{reason="linger_expired"\} \d+$/m);
    assert.match(metrics, /^osprey_uprobe_files_detaching \d+$/m);
    // the store file syncs at checkpoints (no write-ahead log by default): what a crash would lose is shown
    assert.match(metrics, /^osprey_store_spans_unsynced \d+$/m);
    assert.match(metrics, /^osprey_store_checkpoints_total \d+$/m);
    assert.match(metrics, /^osprey_store_last_checkpoint_seconds [\d.e-]+$/m);

    // background threads (DuckDB's, V8's, libuv's) yield to the traced applications; the JS
    // thread and the ring buffer's reader keep the process's priority
    const bg = (status as unknown as { backgroundPriority: { nice: number; threads_lowered: number; errors: number } }).backgroundPriority;
    assert.equal(bg.nice, 10);
    assert.equal(bg.errors, 0);
    const pid = agent.pid;
    const nice = (tid: string) => Number(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1').split(') ')[1]!.split(' ')[16]);
    const threads = () =>
      readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
        try {
          return [{ tid, name: readFileSync(`/proc/${pid}/task/${tid}/comm`, 'latin1').trim(), nice: nice(tid) }];
        } catch {
          return []; // the thread ended meanwhile
        }
      });
    // a thread started since the agent's last pass (every 5 s) is lowered by the next one (the
    // bound is for a hang only: a loaded machine may delay a pass)
    let ts = threads();
    for (let i = 0; i < 60 && ts.filter((t) => t.nice === 0).length > 2; i++) {
      await sleep(500);
      ts = threads();
    }
    const ring = ts.find((t) => t.name === 'osprey-ringbuf');
    assert.ok(ring, JSON.stringify(ts));
    assert.equal(ring.nice, 0);
    assert.equal(ts.find((t) => t.tid === String(pid))?.nice, 0);
    assert.equal(ts.filter((t) => t.nice === 10).length + 2, ts.length, `every other thread is lowered: ${JSON.stringify(ts)}`);
    assert.ok(ts.length >= 6, JSON.stringify(ts));
  });

  it('bad input: a wrong TraceQL query is a clear error, the agent keeps running', async () => {
    const q = await run(OSPREY, ['query', '--server', agent.url, '{ span.x = }']);
    assert.equal(q.code, 2);
    assert.match(q.stderr, /invalid TraceQL/);
    const r = await fetch(`${agent.url}/api/search?q=${encodeURIComponent('{ nope')}`);
    assert.equal(r.status, 400);
    assert.match(((await r.json()) as { error: string }).error, /invalid TraceQL/);
    assert.equal((await fetch(`${agent.url}/api/echo`)).status, 200);
    const none = await run(OSPREY, ['query', '--server', agent.url, '--json', '{ span.url.path = "/never-requested" }']);
    assert.equal(none.code, 0);
    assert.equal(none.stdout, '');
  });

  it('a second agent on the same port fails with a clear message', async () => {
    const port = new URL(agent.url).port;
    const r = await run(OSPREY, ['up', '--memory', '--listen', `127.0.0.1:${port}`], { timeoutMs: 30000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already in use/);
  });

  it('SIGINT flushes and exits 0; the data survives a restart', async () => {
    assert.equal(await agent.stop(), 0, agent.err());
    const offline = await run(OSPREY, ['query', '--data', data, '--json', '--since', '10m', `{ span.url.path = "${path}" }`]);
    assert.equal(offline.code, 0, offline.stderr);
    assert.equal(offline.stdout.trim().split('\n').length, 2);
    agent = await up(['--data', data, '--listen', `127.0.0.1:${await freePort()}`, '--no-ui']);
    assert.match(agent.err(), /\(\d+ spans kept/);
    const t = await run(OSPREY, ['trace', '--server', agent.url, '--json', traceId]);
    assert.equal(t.code, 0, t.stderr);
    assert.equal(t.stdout.trim().split('\n').length, 2);
  });
});

/** ids of the BPF programs, links and maps a process holds open, from /proc/<pid>/fdinfo */
function bpfObjectsOf(pid: number): { progs: Set<number>; links: Set<number>; maps: Set<number> } {
  const held = { progs: new Set<number>(), links: new Set<number>(), maps: new Set<number>() };
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    let info: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // closed meanwhile
    }
    const id = (key: string) => Number(new RegExp(`^${key}:\\s*(\\d+)`, 'm').exec(info)?.[1] ?? NaN);
    if (target === 'anon_inode:bpf-prog') held.progs.add(id('prog_id'));
    else if (target === 'anon_inode:bpf_link') held.links.add(id('link_id'));
    else if (target === 'anon_inode:bpf-map') held.maps.add(id('map_id'));
  }
  return held;
}

/** ids of every BPF program, link and map the kernel has loaded (bpftool -j) */
async function loadedBpf(): Promise<{ progs: Set<number>; links: Set<number>; maps: Set<number> }> {
  const ids = async (what: string) => {
    const r = await run('bpftool', ['-j', what, 'show']);
    assert.equal(r.code, 0, r.stderr);
    return new Set((JSON.parse(r.stdout || '[]') as { id: number }[]).map((o) => o.id));
  };
  return { progs: await ids('prog'), links: await ids('link'), maps: await ids('map') };
}

describe('osprey up killed with SIGKILL', { timeout: 180_000 }, () => {
  const data = mkdtempSync(join(tmpdir(), 'osprey-kill9-'));
  const paths = [1, 2, 3].map((i) => `/kill9/${Date.now()}-${i}`);
  let py: Proc | undefined;
  let agent: OspreyUp | undefined;

  after(async () => {
    await py?.stop();
    if (agent && !agent.child.exited) await agent.stop();
  });

  it('leaves no BPF program, link or map behind; a restart on the same data has every span synced before', async () => {
    agent = await up(['--data', data, '--listen', `127.0.0.1:${await freePort()}`, '--no-ui', '--store-sync', '2s']);
    const pyPort = await freePort();
    py = await startServer('python3', ['-m', 'http.server', String(pyPort), '--bind', '127.0.0.1'], pyPort);

    // what this agent holds, seen by the kernel too (so that "gone" below means something)
    const ours = bpfObjectsOf(agent.pid);
    assert.ok(ours.progs.size >= 20 && ours.links.size >= 20 && ours.maps.size >= 1, `held: ${ours.progs.size} programs, ${ours.links.size} links, ${ours.maps.size} maps`);
    const loaded = await loadedBpf();
    for (const kind of ['progs', 'links', 'maps'] as const) {
      for (const id of ours[kind]) assert.ok(loaded[kind].has(id), `${kind} ${id} held by osprey but not listed by bpftool`);
    }

    for (const p of paths) assert.equal((await run('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${pyPort}${p}`])).code, 0);
    // stored and queryable: both spans of every request
    const query = async (source: string[]) => {
      const q = await run(OSPREY, ['query', ...source, '--json', '--since', '10m', '{ span.url.path =~ "/kill9/.*" }']);
      assert.equal(q.code, 0, q.stderr);
      return q.stdout
        .trim()
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as { traceId: string; spanId: string; kind: string; attributes: Record<string, unknown> })
        .filter((s) => paths.includes(s.attributes['url.path'] as string));
    };
    const url = agent.url;
    const before = await waitFor('both spans of the 3 requests queryable', async () => {
      const spans = await query(['--server', url]);
      return spans.length >= 6 ? spans : undefined;
    }, 15_000, 200);
    assert.equal(before.length, 6, JSON.stringify(before));
    // the store file has no write-ahead log (the default): spans reach it at a checkpoint, at
    // most --store-sync after their commit. The host's other traffic keeps the unsynced count
    // above 0, so wait for two more checkpoints: the second began after these spans were stored
    const checkpoints = async () => Number(/^osprey_store_checkpoints_total (\d+)$/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? NaN);
    const c0 = await checkpoints();
    assert.ok(Number.isInteger(c0), 'osprey_store_checkpoints_total in /metrics');
    await waitFor('two checkpoints after the spans were stored', async () => (await checkpoints()) >= c0 + 2, 20_000, 200);
    // how long the last checkpoint held up the commits, in seconds: status' store_lastCheckpointMs
    // (read on both sides of /metrics, so that a checkpoint in between shows and is read again)
    const lastCheckpointMs = async () => ((await (await fetch(`${url}/api/osprey/status`)).json()) as { counters: Record<string, number> }).counters['store_lastCheckpointMs'];
    const seen = await waitFor('the same last checkpoint in status and /metrics', async () => {
      const ms = await lastCheckpointMs();
      const text = await (await fetch(`${url}/metrics`)).text();
      return ms === (await lastCheckpointMs()) ? { ms, seconds: Number(/^osprey_store_last_checkpoint_seconds (\S+)$/m.exec(text)?.[1]) } : undefined;
    }, 10_000, 100);
    assert.ok(seen.ms! > 0, JSON.stringify(seen));
    assert.equal(seen.seconds, seen.ms! / 1e3);

    process.kill(agent.pid, 'SIGKILL');
    const st = await agent.child.exit;
    assert.equal(st.signal, 'SIGKILL');

    // the kernel frees what only the dead process held; freeing programs is deferred work
    const remaining = async () => {
      const now = await loadedBpf();
      return {
        progs: [...ours.progs].filter((id) => now.progs.has(id)),
        links: [...ours.links].filter((id) => now.links.has(id)),
        maps: [...ours.maps].filter((id) => now.maps.has(id)),
      };
    };
    const none = { progs: [], links: [], maps: [] };
    await waitFor("the killed agent's BPF objects to be freed", async () => JSON.stringify(await remaining()) === JSON.stringify(none), 20_000, 200).catch(() => undefined);
    assert.deepEqual(await remaining(), none, 'BPF objects of the killed agent still loaded');

    // the store opens where the killed agent left it, with every span it had stored
    const offline = await query(['--data', data]);
    assert.deepEqual(offline.map((s) => s.spanId).sort(), before.map((s) => s.spanId).sort(), 'read offline after kill -9');
    agent = await up(['--data', data, '--listen', `127.0.0.1:${await freePort()}`, '--no-ui']);
    assert.match(agent.err(), /\((\d+) spans kept/);
    const kept = Number(/\((\d+) spans kept/.exec(agent.err())![1]);
    assert.ok(kept >= 6, `spans kept: ${kept}`);
    const after = await query(['--server', agent.url]);
    assert.deepEqual(after.map((s) => s.spanId).sort(), before.map((s) => s.spanId).sort());
    assert.deepEqual(new Set(after.map((s) => s.traceId)).size, 3);
    assert.equal(await agent.stop(), 0, agent.err());
  });
});
