// Kubernetes metadata against the FAKE API server (test/fake-kube-apiserver.ts: no real one
// can run here) serving recorded object shapes with real list/watch semantics: the official
// client's informers list and watch this node's pods and the cluster's Services, owners are
// looked up through ReplicaSets and Jobs, changes arrive as ADDED/MODIFIED/DELETED, a 410
// Gone relists, bookmarks keep a resumed watch from expiring, a 403 is an error that is
// counted, described and retried while nothing else stops.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeMetadata, kubeSettings, loadKubeConfig, type PodIdentity } from '../src/resource/index.js';
import type { SlimPod } from '../src/resource/kube/objects.js';
import { FakeKubeApiServer } from './fake-kube-apiserver.js';
import { containerIdOf, fixturePod, NODE, seed, type KubeFixtures } from './kube-fixtures.js';
import { waitFor } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'osprey-kube-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Started {
  fake: FakeKubeApiServer;
  kube: KubeMetadata;
  changed: SlimPod[];
  errors: string[];
  stop(): Promise<void>;
}

async function start(f?: (fake: FakeKubeApiServer) => void, opts: { bookmarkMs?: number } = {}): Promise<Started & { fixtures: KubeFixtures }> {
  const fake = await FakeKubeApiServer.start({ bookmarkMs: opts.bookmarkMs ?? 200 });
  const fixtures = seed(fake);
  f?.(fake);
  const path = fake.writeKubeconfig(join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`));
  const settings = kubeSettings({ kubeconfig: path, nodeName: NODE }, {});
  assert.ok(settings);
  const changed: SlimPod[] = [];
  const errors: string[] = [];
  const kube = new KubeMetadata({ kubeconfig: loadKubeConfig(settings), nodeName: NODE, onPod: (p) => changed.push(p), onError: (m) => errors.push(m), backoffMs: 50 }).start();
  return {
    fake,
    kube,
    changed,
    errors,
    fixtures,
    stop: async () => {
      await kube.stop();
      await fake.stop();
    },
  };
}

/** the identity of a container once it is complete (owner lookups done) */
function complete(kube: KubeMetadata, containerId: string): Promise<PodIdentity> {
  return waitFor(`identity of container ${containerId.slice(0, 12)}`, () => {
    const id = kube.identity(containerId, undefined);
    return id?.complete ? id : undefined;
  });
}

describe('Kubernetes metadata (fake API server)', () => {
  let s: Awaited<ReturnType<typeof start>>;
  before(async () => {
    s = await start();
  });
  after(async () => {
    await s.stop();
  });

  it('watches only this node\'s pods (fieldSelector spec.nodeName) and all services', async () => {
    await waitFor('informers synced and watching', () => s.kube.status().state === 'connected' && s.fake.watches('pods') > 0 && s.fake.watches('services') > 0);
    const podRequests = s.fake.requests.filter((r) => r.path === '/api/v1/pods');
    assert.ok(podRequests.length >= 2, 'a list and a watch');
    for (const r of podRequests) assert.equal(r.query['fieldSelector'], `spec.nodeName=${NODE}`);
    assert.ok(podRequests.some((r) => r.query['watch'] === 'true' && r.query['allowWatchBookmarks'] === 'true' && r.query['resourceVersion']));
    const st = s.kube.status();
    assert.equal(st.podsCached, 4, 'the four pods of worker-3, not the one of worker-7');
    assert.equal(st.servicesCached, 4);
    assert.equal(s.kube.identity(containerIdOf(fixturePod(s.fixtures, 'frontend-6c5b4d7f9-k8j2p')), undefined), undefined, 'another node\'s pod is not known');
  });

  it('a Deployment\'s pod: namespace, pod, container, ReplicaSet → Deployment, service named after it', async () => {
    const pod = fixturePod(s.fixtures, 'checkout-7d9f8b6c5d-x2mfq');
    const id = await complete(s.kube, containerIdOf(pod));
    assert.deepEqual(id.attributes, {
      'k8s.namespace.name': 'shop',
      'k8s.pod.name': 'checkout-7d9f8b6c5d-x2mfq',
      'k8s.pod.uid': pod.metadata.uid,
      'k8s.node.name': NODE,
      'service.namespace': 'shop',
      'k8s.container.name': 'checkout',
      'k8s.replicaset.name': 'checkout-7d9f8b6c5d',
      'k8s.deployment.name': 'checkout',
    });
    assert.equal(id.serviceName, 'checkout');
    assert.ok(s.fake.requests.some((r) => r.path === '/apis/apps/v1/namespaces/shop/replicasets/checkout-7d9f8b6c5d'), 'the ReplicaSet was read');
    assert.ok(!s.fake.requests.some((r) => r.path === '/apis/apps/v1/replicasets'), 'no cluster-wide ReplicaSet list or watch');
    assert.ok(s.changed.some((p) => p.metadata.name === 'checkout-7d9f8b6c5d-x2mfq'), 'the pod was reported again once its owner was known');
  });

  it('StatefulSet, DaemonSet, CronJob pods; the app.kubernetes.io/name label names the service first', async () => {
    const inv = await complete(s.kube, containerIdOf(fixturePod(s.fixtures, 'inventory-0')));
    assert.equal(inv.attributes['k8s.statefulset.name'], 'inventory');
    assert.equal(inv.attributes['k8s.container.name'], 'api');
    assert.equal(inv.serviceName, 'inventory');
    const ds = await complete(s.kube, containerIdOf(fixturePod(s.fixtures, 'log-shipper-4qkzn')));
    assert.equal(ds.attributes['k8s.daemonset.name'], 'log-shipper');
    assert.equal(ds.serviceName, 'log-shipper');
    const job = await complete(s.kube, containerIdOf(fixturePod(s.fixtures, 'nightly-report-28973280-7wq5d')));
    assert.equal(job.attributes['k8s.job.name'], 'nightly-report-28973280');
    assert.equal(job.attributes['k8s.cronjob.name'], 'nightly-report');
    assert.equal(job.serviceName, 'nightly-report');
    // by the pod uid of the cgroup path alone (a container the status does not list yet)
    const byUid = s.kube.identity(undefined, fixturePod(s.fixtures, 'inventory-0').metadata.uid);
    assert.equal(byUid?.attributes['k8s.pod.name'], 'inventory-0');
  });

  it('peers: a ClusterIP is its Service, a pod IP its pod; headless Services have no IP', async () => {
    assert.deepEqual(s.kube.peer('10.96.142.7'), { 'peer.service': 'inventory', 'peer.k8s.service.name': 'inventory', 'peer.k8s.namespace.name': 'stock' });
    assert.deepEqual(s.kube.peer('10.96.0.10'), { 'peer.service': 'kube-dns', 'peer.k8s.service.name': 'kube-dns', 'peer.k8s.namespace.name': 'kube-system' });
    assert.equal(s.kube.peer('None'), undefined);
    await waitFor('the checkout pod IP named after its Deployment', () => s.kube.peer('10.244.3.17')?.['peer.k8s.deployment.name'] === 'checkout');
    assert.deepEqual(s.kube.peer('10.244.3.17'), {
      'peer.k8s.namespace.name': 'shop',
      'peer.k8s.pod.name': 'checkout-7d9f8b6c5d-x2mfq',
      'peer.k8s.deployment.name': 'checkout',
      'peer.k8s.replicaset.name': 'checkout-7d9f8b6c5d',
      'peer.service': 'checkout',
    });
    assert.equal(s.kube.peer('10.244.7.12'), undefined, 'a pod of another node is not watched');
  });

  it('a pod ADDED before its containers run, then MODIFIED with their ids; DELETED', async () => {
    const pod = fixturePod(s.fixtures, 'checkout-7d9f8b6c5d-x2mfq');
    pod.metadata.name = 'checkout-7d9f8b6c5d-q9w8e';
    pod.metadata.uid = randomUUID();
    const cid = 'c0ffee'.padEnd(64, '1');
    const status = pod['status'] as Record<string, unknown>;
    const running = structuredClone(status);
    // as the kubelet first reports it: Pending, the container waiting, no id, no IP
    pod['status'] = { phase: 'Pending', qosClass: 'Burstable', containerStatuses: [{ name: 'checkout', ready: false, restartCount: 0, started: false, state: { waiting: { reason: 'ContainerCreating' } }, image: 'x', imageID: '' }] };
    s.fake.add(pod);
    await waitFor('the pending pod', () => s.kube.identity(undefined, pod.metadata.uid));
    assert.equal(s.kube.identity(cid, pod.metadata.uid)?.complete, false, 'its container is not known yet');
    (running['containerStatuses'] as { containerID: string }[])[0]!.containerID = `containerd://${cid}`;
    running['podIP'] = '10.244.3.18';
    running['podIPs'] = [{ ip: '10.244.3.18' }];
    pod['status'] = running;
    s.fake.update(pod);
    const id = await complete(s.kube, cid);
    assert.equal(id.attributes['k8s.pod.name'], 'checkout-7d9f8b6c5d-q9w8e');
    assert.equal(id.attributes['k8s.container.name'], 'checkout');
    await waitFor('its IP indexed', () => s.kube.peer('10.244.3.18'));
    s.fake.remove('Pod', 'shop', 'checkout-7d9f8b6c5d-q9w8e');
    await waitFor('the deleted pod gone', () => s.kube.identity(cid, undefined) === undefined);
    assert.equal(s.kube.peer('10.244.3.18'), undefined);
    assert.equal(s.kube.status().podsCached, 4);
  });

  it('a pod scheduled onto this node later arrives as ADDED (the selector starts matching)', async () => {
    const pod = fixturePod(s.fixtures, 'frontend-6c5b4d7f9-k8j2p');
    const cid = containerIdOf(pod);
    (pod['spec'] as { nodeName: string }).nodeName = '';
    pod.metadata.name = 'frontend-6c5b4d7f9-zz9zz';
    s.fake.add(pod);
    (pod['spec'] as { nodeName: string }).nodeName = NODE;
    s.fake.update(pod);
    const id = await complete(s.kube, cid);
    assert.equal(id.attributes['k8s.deployment.name'], 'frontend');
    assert.equal(id.serviceName, 'frontend');
    s.fake.remove('Pod', 'shop', 'frontend-6c5b4d7f9-zz9zz');
    await waitFor('gone again', () => s.kube.identity(cid, undefined) === undefined);
  });

  it('410 Gone: a watch resuming from a compacted revision relists, and the gap\'s changes are seen', async () => {
    const lists = () => s.fake.requests.filter((r) => r.path === '/api/v1/pods' && r.query['watch'] === undefined).length;
    const before = lists();
    const statsBefore = s.kube.status().informers.pods!.lists;
    // the informer is offline while pods change and etcd compacts past its revision
    const added = fixturePod(s.fixtures, 'log-shipper-4qkzn');
    added.metadata.name = 'log-shipper-gap01';
    added.metadata.uid = randomUUID();
    const cid = 'feed'.padEnd(64, '2');
    (added['status'] as { containerStatuses: { containerID: string }[] }).containerStatuses[0]!.containerID = `containerd://${cid}`;
    s.fake.compact();
    s.fake.closeWatches();
    s.fake.add(added);
    s.fake.remove('Pod', 'reporting', 'nightly-report-28973280-7wq5d');
    s.fake.compact();
    await waitFor('a relist', () => lists() > before, 10_000);
    await waitFor('the pod added in the gap', () => s.kube.identity(cid, undefined), 10_000);
    await waitFor('the pod deleted in the gap gone', () => s.kube.identity(containerIdOf(fixturePod(s.fixtures, 'nightly-report-28973280-7wq5d')), undefined) === undefined);
    assert.ok(s.kube.status().informers.pods!.lists > statsBefore);
    await waitFor('connected again', () => s.kube.status().state === 'connected');
  });
});

describe('Kubernetes metadata: bookmarks and errors (fake API server)', () => {
  it('bookmarks keep a resumed watch current: no relist after other nodes\' churn and a compaction', async () => {
    const s = await start(undefined, { bookmarkMs: 100 });
    try {
      await waitFor('synced', () => s.kube.status().state === 'connected');
      const lists = () => s.kube.status().informers.pods!.lists;
      const before = lists();
      // churn the watch does not select (another node's pods) moves the revision on
      for (let i = 0; i < 5; i++) {
        const p = fixturePod(s.fixtures, 'frontend-6c5b4d7f9-k8j2p');
        p.metadata.name = `frontend-6c5b4d7f9-churn${i}`;
        s.fake.add(p);
      }
      const rv = s.fake.resourceVersion;
      const bookmarks = s.kube.status().informers.pods!.bookmarks;
      await waitFor('a bookmark past the churn', () => s.kube.status().informers.pods!.bookmarks > bookmarks + 1);
      s.fake.compact();
      s.fake.closeWatches();
      const resumed = await waitFor('the watch resumed', () => s.fake.requests.filter((r) => r.path === '/api/v1/pods' && r.query['watch'] === 'true').at(-1)?.query['resourceVersion'] === String(rv) && s.fake.watches('pods') > 0);
      assert.ok(resumed);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(lists(), before, 'resumed from the bookmark, no relist');
      assert.equal(s.kube.status().state, 'connected');
    } finally {
      await s.stop();
    }
  });

  it('403 Forbidden: a clear error, counted, status says so; retried until RBAC allows it', async () => {
    const s = await start((fake) => fake.forbid('pods'));
    try {
      await waitFor('an error', () => s.errors.length > 0);
      const st = s.kube.status();
      assert.equal(st.state, 'error');
      assert.match(st.lastError ?? '', /forbidden \(403\) reading pods on node worker-3: pods is forbidden: User "system:serviceaccount:osprey:osprey-agent" cannot list resource "pods"/);
      assert.match(st.lastError ?? '', /needs get, list and watch on pods/);
      assert.ok(st.counters.errors >= 1);
      await waitFor('retried', () => s.kube.status().counters.errors >= 2);
      s.fake.forbid('pods', false);
      await waitFor('connected once allowed', () => s.kube.status().state === 'connected', 10_000);
      assert.equal(s.kube.status().podsCached, 4);
    } finally {
      await s.stop();
    }
  });

  it('ReplicaSet lookups forbidden: the pod is known, its Deployment is left out (never guessed from names)', async () => {
    const s = await start((fake) => fake.forbid('replicasets'));
    try {
      const id = await complete(s.kube, containerIdOf(fixturePod(s.fixtures, 'checkout-7d9f8b6c5d-x2mfq')));
      assert.equal(id.attributes['k8s.replicaset.name'], 'checkout-7d9f8b6c5d');
      assert.equal(id.attributes['k8s.deployment.name'], undefined);
      assert.equal(id.serviceName, 'checkout-7d9f8b6c5d', 'the ReplicaSet is the workload known');
      assert.ok(s.kube.status().counters.owner_lookup_errors >= 1);
      assert.match(s.errors.join('\n'), /forbidden \(403\) reading replicaset shop\/checkout-7d9f8b6c5d/);
    } finally {
      await s.stop();
    }
  });

  it('an unreachable API server: a clear error, retried', async () => {
    const fake = await FakeKubeApiServer.start();
    const path = fake.writeKubeconfig(join(dir, 'kubeconfig-down'));
    await fake.stop();
    const settings = kubeSettings({ kubeconfig: path, nodeName: NODE }, {})!;
    const errors: string[] = [];
    const kube = new KubeMetadata({ kubeconfig: loadKubeConfig(settings), nodeName: NODE, onError: (m) => errors.push(m), backoffMs: 50 }).start();
    try {
      await waitFor('errors', () => errors.length >= 2);
      assert.match(errors[0]!, /unreachable \(ECONNREFUSED\)/);
      assert.equal(kube.status().state, 'error');
    } finally {
      await kube.stop();
    }
  });

  it('settings: flag, KUBECONFIG, in-cluster; node from flag, NODE_NAME, host name', () => {
    assert.equal(kubeSettings({}, {}), undefined, 'no credentials: off');
    assert.deepEqual(kubeSettings({ kubeconfig: '/k', nodeName: 'n1' }, { NODE_NAME: 'n2', KUBECONFIG: '/e' }), { source: 'flag', kubeconfig: '/k', nodeName: 'n1', nodeFrom: 'flag' });
    assert.deepEqual(kubeSettings({}, { NODE_NAME: 'n2', KUBECONFIG: '/e' }), { source: 'KUBECONFIG', kubeconfig: '/e', nodeName: 'n2', nodeFrom: 'NODE_NAME' });
    const token = join(dir, 'token');
    assert.equal(kubeSettings({}, { KUBERNETES_SERVICE_HOST: '10.96.0.1' }, token), undefined, 'no service account token: off');
    writeFileSync(token, 'x');
    const s = kubeSettings({}, { KUBERNETES_SERVICE_HOST: '10.96.0.1' }, token);
    assert.equal(s?.source, 'in-cluster');
    assert.equal(s?.nodeFrom, 'hostname');
    assert.throws(() => loadKubeConfig({ source: 'flag', kubeconfig: join(dir, 'missing'), nodeName: 'x', nodeFrom: 'flag' }), /cannot load Kubernetes credentials from --kubeconfig .*missing: no such file/);
  });
});

