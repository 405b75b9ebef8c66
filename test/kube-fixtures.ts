// The recorded object shapes the fake API server serves (test/fixtures/kube/*.json): a node
// `worker-3` with a Deployment's, a StatefulSet's, a DaemonSet's and a CronJob's pod, one pod
// of another node, the ReplicaSets and the Job that own them, and Services.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FakeKubeApiServer, KubeObject } from './fake-kube-apiserver.js';

const DIR = fileURLToPath(new URL('../../test/fixtures/kube/', import.meta.url));

export const NODE = 'worker-3';

export interface KubeFixtures {
  nodes: KubeObject[];
  pods: KubeObject[];
  replicasets: KubeObject[];
  jobs: KubeObject[];
  services: KubeObject[];
}

export function kubeFixtures(): KubeFixtures {
  const load = (name: string) => JSON.parse(readFileSync(`${DIR}${name}.json`, 'utf8')) as KubeObject[];
  return { nodes: load('nodes'), pods: load('pods'), replicasets: load('replicasets'), jobs: load('jobs'), services: load('services') };
}

/** every fixture object, added to the fake (owners first, as a cluster creates them) */
export function seed(fake: FakeKubeApiServer, f: KubeFixtures = kubeFixtures()): KubeFixtures {
  for (const o of [...f.nodes, ...f.replicasets, ...f.jobs, ...f.services, ...f.pods]) fake.add(o);
  return f;
}

/** a fixture pod by name */
export function fixturePod(f: KubeFixtures, name: string): KubeObject {
  const p = f.pods.find((x) => x.metadata.name === name);
  if (!p) throw new Error(`no fixture pod ${name}`);
  return structuredClone(p);
}

/** the 64-hex container id of a pod's first container status */
export function containerIdOf(pod: KubeObject): string {
  const cs = (pod['status'] as { containerStatuses: { containerID: string }[] }).containerStatuses[0]!;
  return cs.containerID.split('://')[1]!;
}
