// Kubernetes metadata end to end: REAL processes (Node and Python HTTP servers and clients) run in
// REAL cgroup v2 directories named as the kubelet names them (systemd driver with containerd
// and CRI-O scopes, cgroupfs driver), `osprey up --kubeconfig` watches the FAKE API server
// (test/fake-kube-apiserver.ts: no real one can run here) serving the pods of those
// containers, and the spans in the store carry pod, namespace and workload; TraceQL, the CLI
// and the HTTP API filter by them. Pod IPs and the Service's ClusterIP are loopback addresses
// (127.0.0.3x), so the traffic stays on this machine.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startProcess } from '../src/proc/index.js';
import type { SpanJson } from '../src/model/index.js';
import { FakeKubeApiServer, type KubeObject } from './fake-kube-apiserver.js';
import { fixturePod, kubeFixtures, NODE, type KubeFixtures } from './kube-fixtures.js';
import { freePort, OSPREY, ospreyUp, run, waitFor, type OspreyUp, type Proc } from './helpers.js';

/** where the unified (v2) hierarchy is mounted: /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host */
function cgroup2Root(): string {
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const [, mnt, type] = line.split(' ');
    if (type === 'cgroup2' && mnt) return mnt;
  }
  throw new Error('no cgroup2 mount: the test needs the unified hierarchy');
}

/** cgroup directories made for the test, removed (deepest first) at the end */
class TestCgroups {
  readonly root = cgroup2Root();
  readonly #made: string[] = [];

  /** mkdir -p of a path below the root; returns the directory */
  make(rel: string): string {
    let dir = this.root;
    for (const part of rel.split('/').filter(Boolean)) {
      dir = join(dir, part);
      if (!existsSync(dir)) {
        mkdirSync(dir);
        this.#made.push(dir);
      }
    }
    return dir;
  }

  cleanup(): void {
    for (const dir of this.#made.reverse()) {
      try {
        // anything still inside goes back to the root first (a cgroup with processes cannot go)
        for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) writeFileSync(join(this.root, 'cgroup.procs'), pid);
        rmdirSync(dir);
      } catch {
        // a parent shared with another run (kubepods.slice) may still be in use: left as it is
      }
    }
  }
}

/** argv that runs `cmd args` as a process born in cgroup `dir` (a shell joins it, then execs: as runc starts a container) */
function inCgroup(dir: string, cmd: string, args: string[]): { cmd: string; args: string[] } {
  return { cmd: 'sh', args: ['-c', `echo $$ > ${dir}/cgroup.procs && exec "$0" "$@"`, cmd, ...args] };
}

const hex64 = () => randomBytes(32).toString('hex');

interface PodPlan {
  pod: KubeObject;
  uid: string;
  containerId: string;
  cgroup: string;
}

/** a fixture pod with a fresh uid, container id and IP, and the cgroup path its runtime would make */
function plan(f: KubeFixtures, name: string, ip: string, form: 'containerd' | 'crio' | 'cgroupfs'): PodPlan {
  const pod = fixturePod(f, name);
  const uid = randomUUID();
  const containerId = hex64();
  pod.metadata.uid = uid;
  const status = pod['status'] as { containerStatuses: { containerID: string }[]; podIP: string; podIPs: { ip: string }[] };
  status.containerStatuses[0]!.containerID = `${form === 'crio' ? 'cri-o' : 'containerd'}://${containerId}`;
  status.podIP = ip;
  status.podIPs = [{ ip }];
  const u = uid.replace(/-/g, '_');
  const cgroup =
    form === 'containerd'
      ? `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${u}.slice/cri-containerd-${containerId}.scope`
      : form === 'crio'
        ? `kubepods.slice/kubepods-pod${u}.slice/crio-${containerId}.scope`
        : `kubepods/besteffort/pod${uid}/${containerId}`;
  return { pod, uid, containerId, cgroup };
}

describe('Kubernetes metadata end to end (real processes in real cgroups, fake API server)', () => {
  const cgroups = new TestCgroups();
  const dir = mkdtempSync(join(tmpdir(), 'osprey-kube-e2e-'));
  const f = kubeFixtures();
  let fake: FakeKubeApiServer;
  let agent: OspreyUp;
  const procs: Proc[] = [];
  // checkout (Deployment, containerd) calls inventory (StatefulSet, CRI-O) through its Service's ClusterIP
  const checkout = plan(f, 'checkout-7d9f8b6c5d-x2mfq', '127.0.0.31', 'containerd');
  const inventory = plan(f, 'inventory-0', '127.0.0.33', 'crio');
  // the log shipper (DaemonSet, cgroupfs driver) calls checkout's pod IP
  const shipper = plan(f, 'log-shipper-4qkzn', '127.0.0.34', 'cgroupfs');
  // a CronJob's pod whose pod object reaches the informer only after its first spans
  const report = plan(f, 'nightly-report-28973280-7wq5d', '127.0.0.35', 'containerd');
  const SERVICE_IP = '127.0.0.32';
  let checkoutPort = 0;
  let inventoryPort = 0;
  let reportPort = 0;

  const query = async (q: string): Promise<SpanJson[]> => {
    const r = await run(OSPREY, ['query', '--server', agent.url, '--json', '--since', '10m', '--limit', '1000', q]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as SpanJson);
  };
  const get = async (path: string): Promise<unknown> => (await fetch(new URL(path, agent.url))).json();
  const status = async () => ((await get('/api/osprey/status')) as { kubernetes: { state: string; podsCached: number; lastError?: string; counters: { errors: number }; informers: { pods: { lists: number } } } }).kubernetes;

  before(async () => {
    fake = await FakeKubeApiServer.start({ bookmarkMs: 500 });
    const svc = structuredClone(f.services.find((s) => s.metadata.name === 'inventory')!);
    (svc['spec'] as Record<string, unknown>)['clusterIP'] = SERVICE_IP;
    (svc['spec'] as Record<string, unknown>)['clusterIPs'] = [SERVICE_IP];
    for (const o of [...f.nodes, ...f.replicasets, ...f.jobs, ...f.services.filter((s) => s.metadata.name !== 'inventory'), svc, checkout.pod, inventory.pod, shipper.pod]) fake.add(o);
    const kubeconfig = fake.writeKubeconfig(join(dir, 'kubeconfig'));

    // the processes, each born in its container's cgroup
    [checkoutPort, inventoryPort, reportPort] = [await freePort(), await freePort(), await freePort()];
    const www = join(dir, 'www');
    mkdirSync(join(www, 'api', 'item'), { recursive: true });
    for (const x of ['a', 'b', 'c', 'd']) writeFileSync(join(www, 'api', 'item', x), `{"item":"${x}"}`);
    const inv = inCgroup(cgroups.make(inventory.cgroup), 'python3', ['-m', 'http.server', String(inventoryPort), '--bind', SERVICE_IP, '--directory', www]);
    procs.push(await startProcess({ name: 'inventory', ...inv, port: inventoryPort, host: SERVICE_IP }));
    const co = inCgroup(cgroups.make(checkout.cgroup), process.execPath, [resolve('test/fixtures/forwarder.mjs'), String(checkoutPort), `http://${SERVICE_IP}:${inventoryPort}`, '127.0.0.31']);
    procs.push(await startProcess({ name: 'checkout', ...co, port: checkoutPort, host: '127.0.0.31' }));
    const rep = inCgroup(cgroups.make(report.cgroup), 'python3', ['-m', 'http.server', String(reportPort), '--bind', '127.0.0.35', '--directory', www]);
    procs.push(await startProcess({ name: 'report', ...rep, port: reportPort, host: '127.0.0.35' }));

    agent = await ospreyUp(['--memory', '--listen', `127.0.0.1:${await freePort()}`, '--no-ui', '--kubeconfig', kubeconfig, '--node-name', NODE]);
    assert.match(agent.err(), /kubernetes: metadata from https:\/\/127\.0\.0\.1:\d+ \(--kubeconfig\), pods of node worker-3 \(from --node-name\)/);
    await waitFor('metadata connected', async () => (await status()).state === 'connected', 10_000);
  });

  after(async () => {
    await agent?.stop();
    for (const p of procs) await p.stop();
    await fake?.stop();
    cgroups.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('server and client spans carry pod, namespace, container and workload; the client span its peer Service', async () => {
    for (const x of ['a', 'b']) {
      const r = await fetch(`http://127.0.0.31:${checkoutPort}/front/${x}`);
      assert.equal(r.status, 200);
    }
    const spans = await waitFor('checkout\'s and inventory\'s spans', async () => {
      const s = await query('{ span.url.path =~ "/front/.*|/api/item/.*" }');
      return s.filter((x) => x.kind === 'server').length >= 4 && s.filter((x) => x.kind === 'client').length >= 2 ? s : undefined;
    }, 15_000);
    const front = spans.find((s) => s.kind === 'server' && String(s.attributes['url.path']).startsWith('/front/'))!;
    assert.deepEqual(
      Object.fromEntries(Object.entries(front.resource).filter(([k]) => k.startsWith('k8s.') || k.startsWith('service.') || k === 'container.id')),
      {
        'service.name': 'checkout',
        'service.namespace': 'shop',
        'container.id': checkout.containerId,
        'k8s.namespace.name': 'shop',
        'k8s.pod.name': 'checkout-7d9f8b6c5d-x2mfq',
        'k8s.pod.uid': checkout.uid,
        'k8s.node.name': NODE,
        'k8s.container.name': 'checkout',
        'k8s.replicaset.name': 'checkout-7d9f8b6c5d',
        'k8s.deployment.name': 'checkout',
      },
    );
    const client = spans.find((s) => s.kind === 'client' && s.resource['k8s.pod.name'] === 'checkout-7d9f8b6c5d-x2mfq')!;
    assert.ok(client, 'checkout\'s call to the inventory Service');
    assert.equal(client.attributes['peer.service'], 'inventory');
    assert.equal(client.attributes['peer.k8s.service.name'], 'inventory');
    assert.equal(client.attributes['peer.k8s.namespace.name'], 'stock');
    const inv = spans.find((s) => s.kind === 'server' && String(s.attributes['url.path']).startsWith('/api/item/'))!;
    assert.equal(inv.resource['service.name'], 'inventory', 'named by its app.kubernetes.io/name label');
    assert.equal(inv.resource['k8s.statefulset.name'], 'inventory');
    assert.equal(inv.resource['k8s.namespace.name'], 'stock');
    assert.equal(inv.resource['k8s.container.name'], 'api');
    assert.equal(inv.parentSpanId, client.spanId, 'linked across the namespaces');
  });

  it('TraceQL, the CLI and the HTTP API filter by namespace, pod and workload', async () => {
    const shop = await query('{ resource.k8s.namespace.name = "shop" }');
    assert.ok(shop.length > 0);
    assert.ok(shop.every((s) => s.resource['k8s.namespace.name'] === 'shop'));
    const stock = await query('{ resource.k8s.namespace.name = "stock" && kind = server }');
    assert.ok(stock.length >= 2 && stock.every((s) => s.resource['k8s.pod.name'] === 'inventory-0'));
    const byPod = await query('{ resource.k8s.pod.name = "inventory-0" }');
    assert.equal(byPod.length, stock.length);
    const byWorkload = await query('{ resource.k8s.deployment.name = "checkout" && kind = client }');
    assert.ok(byWorkload.length >= 2 && byWorkload.every((s) => s.attributes['peer.k8s.namespace.name'] === 'stock'), JSON.stringify(byWorkload, null, 1));
    assert.deepEqual(await query('{ resource.k8s.namespace.name = "no-such-namespace" }'), []);
    // the osprey HTTP API and Tempo's search API, as Grafana asks
    const api = (await get(`/api/osprey/spans?q=${encodeURIComponent('{ resource.k8s.statefulset.name = "inventory" }')}&since=10m`)) as { spans: SpanJson[] };
    assert.ok(api.spans.length >= 2 && api.spans.every((s) => s.resource['k8s.statefulset.name'] === 'inventory'));
    const values = (await get('/api/v2/search/tag/resource.k8s.namespace.name/values')) as { tagValues: { value: string }[] };
    const ns = values.tagValues.map((v) => v.value);
    assert.ok(ns.includes('shop') && ns.includes('stock'), JSON.stringify(values));
  });

  it('a client span to a pod IP names the peer pod and its workload; the service graph crosses namespaces', async () => {
    // a client that lives on after its call, as a shipper does (the agent reads /proc when the
    // call's events arrive, a batch later: a process gone by then has no cgroup to read)
    const ship = inCgroup(cgroups.make(shipper.cgroup), 'python3', ['-c', `import urllib.request, time; urllib.request.urlopen('http://127.0.0.31:${checkoutPort}/front/c').read(); time.sleep(1.5)`]);
    const r = await run(ship.cmd, ship.args);
    assert.equal(r.code, 0, r.stderr);
    const spans = await waitFor('the shipper\'s call', async () => {
      const s = await query('{ resource.k8s.daemonset.name = "log-shipper" && kind = client }');
      return s.length ? s : undefined;
    }, 15_000);
    assert.equal(spans[0]!.resource['service.name'], 'log-shipper');
    assert.equal(spans[0]!.attributes['peer.k8s.pod.name'], 'checkout-7d9f8b6c5d-x2mfq');
    assert.equal(spans[0]!.attributes['peer.k8s.deployment.name'], 'checkout');
    assert.equal(spans[0]!.attributes['peer.service'], 'checkout');
    // edges between services of different namespaces, named by their Kubernetes workloads
    const edges = await waitFor('the service graph edges', async () => {
      const g = await run(OSPREY, ['graph', '--server', agent.url, '--json']);
      const list = JSON.parse(g.stdout || '[]') as { caller: string; callee: string }[];
      return list.some((x) => x.caller === 'checkout' && x.callee === 'inventory') && list.some((x) => x.caller === 'log-shipper' && x.callee === 'checkout') ? list : undefined;
    }, 20_000);
    assert.ok(edges);
    const metrics = await (await fetch(new URL('/metrics', agent.url))).text();
    assert.match(metrics, /traces_service_graph_request_total\{client="checkout",server="inventory"\} [1-9]/);
  });

  it('a process seen before its pod: spans without it first, then, after a 410 relist brings the pod, with it', async () => {
    const r1 = await fetch(`http://127.0.0.35:${reportPort}/api/item/a`);
    assert.equal(r1.status, 200);
    const early = await waitFor('the report server\'s first span', async () => {
      const s = await query(`{ span.server.port = ${reportPort} && kind = server }`);
      return s.length ? s[0] : undefined;
    }, 15_000);
    assert.equal(early.resource['container.id'], report.containerId);
    assert.equal(early.resource['k8s.pod.name'], undefined, 'the informer does not know the pod yet');
    const listsBefore = (await status()).informers.pods.lists;
    // the agent's watch is cut while the pod is created and etcd compacts: it must relist
    fake.compact();
    fake.closeWatches();
    fake.add(report.pod);
    fake.compact();
    await waitFor('a relist', async () => (await status()).informers.pods.lists > listsBefore, 15_000);
    const late = await waitFor('a span with the pod', async () => {
      await fetch(`http://127.0.0.35:${reportPort}/api/item/b`);
      const s = await query(`{ span.server.port = ${reportPort} && resource.k8s.cronjob.name = "nightly-report" }`);
      return s.length ? s[0] : undefined;
    }, 15_000);
    assert.equal(late.resource['k8s.job.name'], 'nightly-report-28973280');
    assert.equal(late.resource['k8s.namespace.name'], 'reporting');
    assert.equal(late.resource['service.name'], 'nightly-report');
  });

  it('a pod MODIFIED (a label now names the service) and DELETED', async () => {
    const modified = structuredClone(checkout.pod);
    modified.metadata.labels = { ...modified.metadata.labels, 'app.kubernetes.io/name': 'checkout-api' };
    fake.update(modified);
    const renamed = await waitFor('spans under the new name', async () => {
      await fetch(`http://127.0.0.31:${checkoutPort}/front/d`);
      const s = await query('{ resource.service.name = "checkout-api" && kind = server }');
      return s.length ? s : undefined;
    }, 15_000);
    assert.equal(renamed[0]!.resource['k8s.deployment.name'], 'checkout');
    const before = (await status()).podsCached;
    fake.remove('Pod', 'stock', 'inventory-0');
    await waitFor('the deleted pod uncached', async () => (await status()).podsCached === before - 1, 10_000);
  });

  it('403 from the API server: a clear error in status and the log, counted; tracing goes on; recovers', async () => {
    fake.forbid('pods');
    fake.closeWatches();
    const st = await waitFor('the error in status', async () => {
      const s = await status();
      return s.state === 'error' ? s : undefined;
    }, 15_000);
    assert.match(st.lastError ?? '', /forbidden \(403\) reading pods on node worker-3/);
    assert.ok(st.counters.errors >= 1);
    const text = await run(OSPREY, ['status', '--server', agent.url]);
    assert.match(text.stdout, /kubernetes: error/);
    assert.match(text.stdout, /forbidden \(403\)/);
    assert.match(agent.err(), /warning: Kubernetes API .* forbidden \(403\) .*tracing goes on without it, retrying/);
    const metrics = await (await fetch(new URL('/metrics', agent.url))).text();
    assert.match(metrics, /osprey_kube_errors_total [1-9]/);
    // still tracing, still naming from what it had cached
    await fetch(`http://127.0.0.31:${checkoutPort}/front/a?after403=1`);
    await waitFor('a span after the 403', async () => (await query('{ span.url.query =~ ".*after403.*" && resource.k8s.namespace.name = "shop" }')).length > 0, 15_000);
    fake.forbid('pods', false);
    await waitFor('connected again', async () => (await status()).state === 'connected', 45_000);
  });
});
