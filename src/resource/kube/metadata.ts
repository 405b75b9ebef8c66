// Kubernetes metadata for this node: which pod a container belongs to, the workload that
// owns the pod, and which pod or Service an IP address is.
//
// What is watched (informers, see ./informer.ts):
// - the pods of THIS node (fieldSelector spec.nodeName=<node>): on a 5,000-pod cluster the
//   agent holds ~1/N of the pods, slimmed to a few hundred bytes each;
// - all Services (a client span to a ClusterIP is named after the Service, in any namespace).
// What is looked up on demand and cached (bounded): a pod's controller's own controller -
// ReplicaSet → Deployment, Job → CronJob - with one GET per ReplicaSet or Job, never a
// cluster-wide ReplicaSet watch (a ReplicaSet carries its whole pod template, and old ones are
// kept for rollbacks: there are many, and they are large).
// Nothing is guessed from names: a ReplicaSet is only a Deployment's when its ownerReferences
// say so (an Argo Rollout's look the same), and a lookup that failed leaves the field out.
import { AppsV1Api, BatchV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Attributes } from '../../model/index.js';
import { describeKubeError, httpStatusOf } from './errors.js';
import { Informer, type InformerStats } from './informer.js';
import { controllerOf, slimPod, slimService, type OwnerRef, type SlimPod, type SlimService } from './objects.js';

export interface KubeMetadataOptions {
  kubeconfig: KubeConfig;
  nodeName: string;
  /** where the settings came from, for status (flag, KUBECONFIG, in-cluster) */
  source?: string;
  /** a pod was added or changed, or its owners became known */
  onPod?: (pod: SlimPod) => void;
  /** every error, described (default: none; `osprey up` prints them) */
  onError?: (message: string) => void;
  /** first informer restart delay after an error, ms (default 1000) */
  backoffMs?: number;
  /** most owner lookups cached (default 4096) */
  maxOwners?: number;
}

/** the Kubernetes identity of a process (resource attributes) */
export interface PodIdentity {
  attributes: Attributes;
  /** the service name Kubernetes gives: annotation, app.kubernetes.io/name label, else the workload */
  serviceName: string | undefined;
  /** nothing more will come: the pod, its container and its owners are all known (or failed) */
  complete: boolean;
}

export interface KubeCounters {
  /** API errors, all kinds (each informer restarts itself after a backoff) */
  errors: number;
  owner_lookups: number;
  owner_lookup_errors: number;
  /** owner lookups dropped from the cache at its limit */
  owners_evicted: number;
}

export interface KubeStatus {
  state: 'connecting' | 'connected' | 'error';
  server: string;
  source: string;
  node: string;
  podsCached: number;
  servicesCached: number;
  ownersCached: number;
  lastError: string | undefined;
  lastErrorAt: string | undefined;
  counters: KubeCounters;
  informers: Record<string, InformerStats>;
}

interface OwnerEntry {
  /** the owner's controller, once looked up ('' kind: it has none) */
  owner: OwnerRef | undefined;
  state: 'pending' | 'done' | 'failed';
  /** a failed lookup is tried again after this time (ms) */
  retryAt: number;
  /** uids of the pods waiting for a pending lookup */
  waiters: Set<string>;
}

const OWNER_RETRY_MS = 60_000;

/** workload kinds, most specific first: the first present names the service */
const WORKLOAD_ATTRS = ['k8s.deployment.name', 'k8s.statefulset.name', 'k8s.daemonset.name', 'k8s.cronjob.name', 'k8s.job.name', 'k8s.replicaset.name'] as const;

export class KubeMetadata {
  readonly counters: KubeCounters = { errors: 0, owner_lookups: 0, owner_lookup_errors: 0, owners_evicted: 0 };
  readonly nodeName: string;
  readonly #opts: KubeMetadataOptions;
  readonly #pods: Informer<SlimPod>;
  readonly #services: Informer<SlimService>;
  readonly #apps: AppsV1Api;
  readonly #batch: BatchV1Api;
  /** container id → pod (this node's) */
  readonly #byContainer = new Map<string, SlimPod>();
  readonly #byUid = new Map<string, SlimPod>();
  /** IP → attributes of the pod or Service it is (peer attributes, built once per change) */
  readonly #podIps = new Map<string, Attributes>();
  readonly #serviceIps = new Map<string, Attributes>();
  /** `Kind/namespace/name` → its controller (insertion order = age, for eviction) */
  readonly #owners = new Map<string, OwnerEntry>();
  readonly #maxOwners: number;
  #lastError: string | undefined;
  #lastErrorAt: string | undefined;
  #started = false;

  constructor(opts: KubeMetadataOptions) {
    this.#opts = opts;
    this.nodeName = opts.nodeName;
    this.#maxOwners = opts.maxOwners ?? 4096;
    const kc = opts.kubeconfig;
    const core = kc.makeApiClient(CoreV1Api);
    this.#apps = kc.makeApiClient(AppsV1Api);
    this.#batch = kc.makeApiClient(BatchV1Api);
    const fieldSelector = `spec.nodeName=${opts.nodeName}`;
    const onError = (m: string) => this.#error(m);
    this.#pods = new Informer<SlimPod>({
      kubeconfig: kc,
      path: '/api/v1/pods',
      what: `pods on node ${opts.nodeName}`,
      fieldSelector,
      list: () => core.listPodForAllNamespaces({ fieldSelector }),
      slim: slimPod,
      onAdd: (p) => this.#podChanged(p),
      onUpdate: (p) => this.#podChanged(p),
      onDelete: (p) => this.#podDeleted(p),
      onError,
      backoffMs: opts.backoffMs,
    });
    this.#services = new Informer<SlimService>({
      kubeconfig: kc,
      path: '/api/v1/services',
      what: 'services',
      list: () => core.listServiceForAllNamespaces(),
      slim: slimService,
      onAdd: (s) => this.#serviceChanged(s),
      onUpdate: (s) => this.#serviceChanged(s),
      onDelete: (s) => this.#serviceDeleted(s),
      onError,
      backoffMs: opts.backoffMs,
    });
  }

  /** starts watching (in the background: errors are counted and retried, never thrown) */
  start(): this {
    if (this.#started) return this;
    this.#started = true;
    this.#pods.start();
    this.#services.start();
    return this;
  }

  async stop(): Promise<void> {
    this.#started = false;
    await Promise.all([this.#pods.stop(), this.#services.stop()]);
  }

  /** the pod a container of this node belongs to: by container id, else by the pod uid of its cgroup */
  pod(containerId: string | undefined, podUid: string | undefined): SlimPod | undefined {
    return (containerId !== undefined ? this.#byContainer.get(containerId) : undefined) ?? (podUid !== undefined ? this.#byUid.get(podUid) : undefined);
  }

  /** the resource attributes of a container (undefined: its pod is not known, yet or at all) */
  identity(containerId: string | undefined, podUid: string | undefined): PodIdentity | undefined {
    const pod = this.pod(containerId, podUid);
    if (!pod) return undefined;
    const m = pod.metadata;
    const a: Attributes = {
      'k8s.namespace.name': m.namespace,
      'k8s.pod.name': m.name,
      'k8s.pod.uid': m.uid,
      'k8s.node.name': this.nodeName,
      // OpenTelemetry Operator and Beyla convention: a service's namespace is its pod's
      'service.namespace': m.namespace,
    };
    let complete = true;
    const container = containerId !== undefined ? pod.containers.find((c) => c.id === containerId) : undefined;
    if (container) a['k8s.container.name'] = container.name;
    else if (containerId !== undefined) complete = false;
    if (!this.#workload(pod, a)) complete = false;
    let serviceName = pod.serviceAnnotation ?? pod.appName;
    if (serviceName === undefined) for (const k of WORKLOAD_ATTRS) if (typeof a[k] === 'string') {
      serviceName = a[k];
      break;
    }
    return { attributes: a, serviceName, complete };
  }

  /** attributes of the pod or Service at an IP address (`peer.*`), undefined when unknown */
  peer(ip: string): Attributes | undefined {
    return this.#serviceIps.get(ip) ?? this.#podIps.get(ip);
  }

  status(): KubeStatus {
    const synced = this.#pods.stats.synced && this.#services.stats.synced;
    const failing = this.#pods.stats.lastError !== undefined || this.#services.stats.lastError !== undefined;
    return {
      state: failing ? 'error' : synced ? 'connected' : 'connecting',
      server: this.#opts.kubeconfig.getCurrentCluster()?.server ?? '',
      source: this.#opts.source ?? '',
      node: this.nodeName,
      podsCached: this.#byUid.size,
      servicesCached: this.#services.list().length,
      ownersCached: this.#owners.size,
      lastError: this.#lastError,
      lastErrorAt: this.#lastErrorAt,
      counters: { ...this.counters },
      informers: { pods: { ...this.#pods.stats }, services: { ...this.#services.stats } },
    };
  }

  #error(message: string): void {
    this.counters.errors++;
    this.#lastError = message;
    this.#lastErrorAt = new Date().toISOString();
    this.#opts.onError?.(message);
  }

  // ---- pods ------------------------------------------------------------------------------

  #podChanged(p: SlimPod): void {
    // an informer may hand the same pod again (a relist): drop the old index entries first
    const old = this.#byUid.get(p.metadata.uid);
    if (old) this.#unindex(old);
    this.#byUid.set(p.metadata.uid, p);
    for (const c of p.containers) this.#byContainer.set(c.id, p);
    if (!p.hostNetwork) {
      const peer = this.#podPeer(p);
      for (const ip of p.ips) this.#podIps.set(ip, peer);
    }
    this.#opts.onPod?.(p);
  }

  #podDeleted(p: SlimPod): void {
    const cur = this.#byUid.get(p.metadata.uid);
    if (cur) this.#unindex(cur);
    this.#byUid.delete(p.metadata.uid);
  }

  #unindex(p: SlimPod): void {
    for (const c of p.containers) if (this.#byContainer.get(c.id) === p) this.#byContainer.delete(c.id);
    for (const ip of p.ips) {
      const cur = this.#podIps.get(ip);
      if (cur !== undefined && cur['peer.k8s.pod.name'] === p.metadata.name && cur['peer.k8s.namespace.name'] === p.metadata.namespace) this.#podIps.delete(ip);
    }
  }

  /** the peer attributes of a pod: who it is, its workload, the name its service has */
  #podPeer(p: SlimPod): Attributes {
    const w: Attributes = {};
    this.#workload(p, w);
    const a: Attributes = { 'peer.k8s.namespace.name': p.metadata.namespace, 'peer.k8s.pod.name': p.metadata.name };
    let svc = p.serviceAnnotation ?? p.appName;
    for (const k of WORKLOAD_ATTRS) {
      const v = w[k];
      if (typeof v !== 'string') continue;
      a[`peer.${k}`] = v;
      svc ??= v;
    }
    if (svc !== undefined) a['peer.service'] = svc;
    return Object.freeze(a);
  }

  // ---- services --------------------------------------------------------------------------

  #serviceChanged(s: SlimService): void {
    this.#serviceDeleted(s);
    const a: Attributes = Object.freeze({
      'peer.service': s.appName ?? s.metadata.name,
      'peer.k8s.service.name': s.metadata.name,
      'peer.k8s.namespace.name': s.metadata.namespace,
    });
    for (const ip of s.ips) this.#serviceIps.set(ip, a);
  }

  #serviceDeleted(s: SlimService): void {
    // a Service's IPs never change; a deleted one's may be reused by another later
    for (const [ip, a] of this.#serviceIps) {
      if (a['peer.k8s.service.name'] === s.metadata.name && a['peer.k8s.namespace.name'] === s.metadata.namespace) this.#serviceIps.delete(ip);
    }
  }

  // ---- owners ----------------------------------------------------------------------------

  /**
   * Writes the pod's workload attributes into `a`; false while an owner lookup is pending
   * (it is started here, and the pod is reported through onPod when it ends).
   */
  #workload(p: SlimPod, a: Attributes): boolean {
    const o = p.owner;
    if (!o) return true;
    const ns = p.metadata.namespace;
    switch (o.kind) {
      case 'StatefulSet':
        a['k8s.statefulset.name'] = o.name;
        return true;
      case 'DaemonSet':
        a['k8s.daemonset.name'] = o.name;
        return true;
      case 'ReplicaSet': {
        a['k8s.replicaset.name'] = o.name;
        const e = this.#owner('ReplicaSet', ns, o.name, p);
        if (e.owner?.kind === 'Deployment') a['k8s.deployment.name'] = e.owner.name;
        return e.state !== 'pending';
      }
      case 'Job': {
        a['k8s.job.name'] = o.name;
        const e = this.#owner('Job', ns, o.name, p);
        if (e.owner?.kind === 'CronJob') a['k8s.cronjob.name'] = e.owner.name;
        return e.state !== 'pending';
      }
      default:
        return true;
    }
  }

  /** the cached controller of a ReplicaSet or Job; starts its lookup when not cached */
  #owner(kind: 'ReplicaSet' | 'Job', namespace: string, name: string, pod: SlimPod): OwnerEntry {
    const key = `${kind}/${namespace}/${name}`;
    const cached = this.#owners.get(key);
    if (cached?.state === 'pending') cached.waiters.add(pod.metadata.uid);
    if (cached && (cached.state !== 'failed' || Date.now() < cached.retryAt)) return cached;
    const e: OwnerEntry = cached ?? { owner: undefined, state: 'pending', retryAt: 0, waiters: new Set() };
    e.state = 'pending';
    e.waiters.add(pod.metadata.uid);
    if (!cached) {
      if (this.#owners.size >= this.#maxOwners) {
        const oldest = this.#owners.keys().next().value;
        if (oldest !== undefined) this.#owners.delete(oldest);
        this.counters.owners_evicted++;
      }
      this.#owners.set(key, e);
    }
    this.counters.owner_lookups++;
    const read = kind === 'ReplicaSet' ? this.#apps.readNamespacedReplicaSet({ name, namespace }) : this.#batch.readNamespacedJob({ name, namespace });
    void read.then(
      (obj) => {
        e.owner = controllerOf(obj.metadata) ?? { kind: '', name: '' };
        e.state = 'done';
        this.#ownerSettled(e);
      },
      (err: unknown) => {
        e.state = 'failed';
        e.retryAt = Date.now() + OWNER_RETRY_MS;
        this.counters.owner_lookup_errors++;
        // a ReplicaSet or Job already gone (404) is not an API problem
        if (httpStatusOf(err) !== 404) this.#error(describeKubeError(err, `${kind.toLowerCase()} ${namespace}/${name}`, this.#opts.kubeconfig.getCurrentCluster()?.server ?? ''));
        this.#ownerSettled(e);
      },
    );
    return e;
  }

  /** the pods that waited for an owner lookup are as complete as they get: tell who waits on them */
  #ownerSettled(e: OwnerEntry): void {
    const uids = [...e.waiters];
    e.waiters.clear();
    if (!this.#started) return;
    for (const uid of uids) {
      const cur = this.#byUid.get(uid);
      if (!cur) continue;
      if (!cur.hostNetwork) {
        const peer = this.#podPeer(cur);
        for (const ip of cur.ips) this.#podIps.set(ip, peer);
      }
      this.#opts.onPod?.(cur);
    }
  }
}
