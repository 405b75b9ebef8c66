#!/usr/bin/env node
// What Kubernetes metadata costs in memory: the FAKE API server (test/fake-kube-apiserver.ts)
// serves a cluster of 5,000 pods (100 on this node, `worker-3`) and 1,000 Services, shaped
// like the fixtures (managedFields included); a child process runs the informers and reports
// its heap and RSS once they have synced, against a child that only loaded the client.
// For comparison, the same child with an informer on ALL pods, unslimmed (what it would
// cost without the node's field selector and the slim shapes).
//
//   make build && node --expose-gc bench/kube-memory.mjs [--pods 5000] [--local 100] [--services 1000]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dist = (p) => join(ROOT, 'dist', p);
const MB = (b) => `${(b / 2 ** 20).toFixed(1)} MB`;

async function child(kubeconfig, mode, expectPods) {
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      globalThis.gc?.();
      await new Promise((r) => setTimeout(r, 100));
    }
    const m = process.memoryUsage();
    return { heapUsed: m.heapUsed, rss: m.rss };
  };
  const { kubeSettings, loadKubeConfig, KubeMetadata } = await import(dist('src/resource/index.js'));
  const client = await import('@kubernetes/client-node');
  const kc = loadKubeConfig(kubeSettings({ kubeconfig, nodeName: 'worker-3' }, {}));
  const before = await settle();
  const t0 = Date.now();
  let count;
  let stop;
  if (mode === 'node-scoped') {
    const kube = new KubeMetadata({ kubeconfig: kc, nodeName: 'worker-3' }).start();
    for (;;) {
      const st = kube.status();
      if (st.state === 'connected' && st.podsCached >= expectPods.local && st.servicesCached >= expectPods.services) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    count = () => kube.status().podsCached;
    stop = () => kube.stop();
  } else {
    // every pod, whole objects, as a naive informer would keep them
    const core = kc.makeApiClient(client.CoreV1Api);
    const inf = client.makeInformer(kc, '/api/v1/pods', () => core.listPodForAllNamespaces());
    await inf.start();
    count = () => inf.list().length;
    stop = () => inf.stop();
  }
  const synced = Date.now() - t0;
  const after = await settle();
  const n = count();
  await stop();
  process.stdout.write(`${JSON.stringify({ mode, pods: n, syncMs: synced, heapBytes: after.heapUsed - before.heapUsed, rssBytes: after.rss - before.rss, rssTotal: after.rss })}\n`);
  process.exit(0);
}

async function main() {
  const { values } = parseArgs({ options: { pods: { type: 'string' }, local: { type: 'string' }, services: { type: 'string' }, child: { type: 'string' }, mode: { type: 'string' }, kubeconfig: { type: 'string' } } });
  const pods = Number(values.pods ?? 5000);
  const local = Number(values.local ?? 100);
  const services = Number(values.services ?? 1000);
  if (values.child) return child(values.kubeconfig, values.mode, { local, services });

  const { FakeKubeApiServer } = await import(dist('test/fake-kube-apiserver.js'));
  const { kubeFixtures } = await import(dist('test/kube-fixtures.js'));
  const f = kubeFixtures();
  const fake = await FakeKubeApiServer.start({ historyLimit: 100 });
  for (const o of [...f.nodes, ...f.replicasets, ...f.jobs]) fake.add(o);
  const template = f.pods[0];
  const svcTemplate = f.services.find((s) => s.metadata.name === 'inventory');
  for (let i = 0; i < pods; i++) {
    const p = structuredClone(template);
    p.metadata.name = `checkout-7d9f8b6c5d-${i.toString(36).padStart(5, '0')}`;
    p.metadata.namespace = `team-${i % 50}`;
    p.metadata.uid = undefined;
    p.spec.nodeName = i < local ? 'worker-3' : `worker-${4 + (i % 49)}`;
    p.status.containerStatuses[0].containerID = `containerd://${i.toString(16).padStart(64, '0')}`;
    p.status.podIP = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    p.status.podIPs = [{ ip: p.status.podIP }];
    fake.add(p);
  }
  for (let i = 0; i < services; i++) {
    const s = structuredClone(svcTemplate);
    s.metadata.name = `svc-${i}`;
    s.metadata.namespace = `team-${i % 50}`;
    s.metadata.uid = undefined;
    s.spec.clusterIP = `10.96.${i >> 8}.${i & 255}`;
    s.spec.clusterIPs = [s.spec.clusterIP];
    fake.add(s);
  }
  const dir = mkdtempSync(join(tmpdir(), 'osprey-kube-mem-'));
  const kubeconfig = fake.writeKubeconfig(join(dir, 'kubeconfig'));
  const rows = [];
  const runChild = (mode) =>
    new Promise((resolve, reject) => {
      import('node:child_process').then(({ execFile }) =>
        execFile(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--child', '1', '--mode', mode, '--kubeconfig', kubeconfig, '--local', String(local), '--services', String(services)], { cwd: ROOT, maxBuffer: 1 << 20 }, (err, out) =>
          err ? reject(err) : resolve(JSON.parse(out)),
        ),
      );
    });
  for (const mode of ['node-scoped', 'all-pods-unslimmed']) rows.push(await runChild(mode));
  await fake.stop();
  rmSync(dir, { recursive: true, force: true });
  const commit = (() => {
    try {
      return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT }).toString().trim();
    } catch {
      return '?';
    }
  })();
  console.log(`kube metadata memory, ${pods} pods (${local} on this node), ${services} services, commit ${commit}, node ${process.version}`);
  for (const r of rows) {
    const per = r.mode === 'node-scoped' ? `${(r.heapBytes / (r.pods + services) / 1024).toFixed(2)} KB heap per cached object` : `${(r.heapBytes / r.pods / 1024).toFixed(2)} KB heap per pod`;
    console.log(`  ${r.mode.padEnd(20)} ${String(r.pods).padStart(5)} pods cached   heap +${MB(r.heapBytes)}   RSS +${MB(r.rssBytes)} (total ${MB(r.rssTotal)})   synced in ${r.syncMs} ms   ${per}`);
  }
}

await main();
