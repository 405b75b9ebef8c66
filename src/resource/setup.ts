// Kubernetes metadata for a running agent (`osprey up`): settings → client → informers →
// the process-table enricher and the peer lookup the agent takes, plus what status and
// /metrics show of it. Off (undefined) when there are no credentials.
//
// The Kubernetes client and everything built on it are imported only when metadata is on:
// loading the client costs ~75 MB of RSS and ~0.5 s, which an agent without Kubernetes
// must not pay.
import type { Attributes } from '../model/index.js';
import { kubeSettings, type KubeSettings } from './kube/settings.js';
import type { KubeMetadata, KubeStatus } from './kube/metadata.js';
import type { KubeResources, KubeResourceCounters } from './kube-resources.js';
import type { SlimPod } from './kube/objects.js';

export interface KubernetesSetup {
  settings: KubeSettings;
  metadata: KubeMetadata;
  resources: KubeResources;
  peerAttributes: (ip: string) => Attributes | undefined;
  status(): KubeStatus & { processes: KubeResourceCounters & { tracked: number; waiting: number } };
  stop(): Promise<void>;
}

/**
 * Reads the settings and the kubeconfig (throws a KubeConfigError with a hint when they are
 * unusable) and starts the informers in the background: API errors are reported through
 * `say` (the first of a kind, then every 100th, so a long outage does not flood the log),
 * counted, and retried; they never stop the agent.
 */
export async function setupKubernetes(flags: { kubeconfig?: string; nodeName?: string }, say: (line: string) => void): Promise<KubernetesSetup | undefined> {
  const settings = kubeSettings(flags);
  if (!settings) return undefined;
  const [{ loadKubeConfig }, { KubeMetadata }, { KubeResources }] = await Promise.all([
    import('./kube/config.js'),
    import('./kube/metadata.js'),
    import('./kube-resources.js'),
  ]);
  const kubeconfig = loadKubeConfig(settings);
  // the informers report pods to the resources, which need the metadata: tied after both exist
  const pods: { changed: (pod: SlimPod) => void } = { changed: () => undefined };
  const seen = new Map<string, number>();
  const metadata = new KubeMetadata({
    kubeconfig,
    nodeName: settings.nodeName,
    source: settings.source,
    onPod: (pod) => pods.changed(pod),
    onError: (m) => {
      const n = (seen.get(m) ?? 0) + 1;
      if (seen.size > 1000) seen.clear();
      seen.set(m, n);
      if (n === 1 || n % 100 === 0) say(`warning: ${m}${n > 1 ? ` (${n} times)` : ''}; tracing goes on without it, retrying`);
    },
  });
  const r = new KubeResources(metadata);
  pods.changed = (pod) => r.podChanged(pod);
  metadata.start();
  return {
    settings,
    metadata,
    resources: r,
    peerAttributes: (ip) => metadata.peer(ip),
    status: () => ({ ...metadata.status(), processes: { ...r.counters, tracked: r.tracked, waiting: r.waiting } }),
    stop: () => metadata.stop(),
  };
}
