// Kubernetes identity on the processes' resources: the one place where pod metadata
// (./kube/metadata.ts) meets the process table (src/agent/process/resource.ts).
//
// A process is often seen before its pod: the kubelet starts the container, the container
// answers its first request, and only then does the pod's MODIFIED event (with the new
// container's id) reach the informer. Such a process keeps the resource it has (host and
// process attributes, the executable's name) and waits, by container id and pod uid; when
// the pod arrives (or its owner lookup ends), its resource is completed in place, so its
// open connections' next spans carry the pod. Every process in a pod stays registered while
// it lives (bounded by the process table), so a pod's later changes (labels) reach it too.
//
// service.name, in order: OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES of the process (never
// overridden), the pod's resource.opentelemetry.io/service.name annotation, its
// app.kubernetes.io/name label, its workload's name, then the executable's name (the
// process table's rule, kept until one of the others is known).
import type { ProcessInfo, ResourceEnricher } from '../agent/process/resource.js';
import type { KubeMetadata } from './kube/metadata.js';
import type { SlimPod } from './kube/objects.js';

export interface KubeResourceCounters {
  /** processes whose pod is known */
  resolved: number;
  /** processes in a container whose pod was not known when first seen */
  waited: number;
  /** resources completed or changed after the process was first seen */
  updated: number;
  /** processes not registered for updates because maxTracked were */
  untracked: number;
}

interface Tracked {
  p: ProcessInfo;
  /** the service name the process table gave (restored if the pod stops naming one) */
  commandService: string;
  complete: boolean;
}

/** resource keys this module writes (removed again when a pod no longer has them) */
const OWNED_PREFIXES = ['k8s.', 'service.namespace'];

export class KubeResources implements ResourceEnricher {
  readonly counters: KubeResourceCounters = { resolved: 0, waited: 0, updated: 0, untracked: 0 };
  readonly #kube: KubeMetadata;
  readonly #tracked = new Map<number, Tracked>();
  /** `c:<container id>` / `p:<pod uid>` → pids */
  readonly #byKey = new Map<string, Set<number>>();
  readonly #maxTracked: number;

  constructor(kube: KubeMetadata, maxTracked = 16384) {
    this.#kube = kube;
    this.#maxTracked = maxTracked;
  }

  /** processes registered for pod updates, and how many of them still wait for their pod */
  get tracked(): number {
    return this.#tracked.size;
  }

  get waiting(): number {
    let n = 0;
    for (const t of this.#tracked.values()) if (!t.complete) n++;
    return n;
  }

  enrich(p: ProcessInfo): void {
    const { containerId, podUid } = p.cgroup;
    // not in a container nor a pod: a host process, nothing to wait for
    if (containerId === undefined && podUid === undefined) return;
    const t: Tracked = { p, commandService: p.serviceName, complete: false };
    this.#apply(t, false);
    if (!t.complete) this.counters.waited++;
    if (this.#tracked.size >= this.#maxTracked) {
      this.counters.untracked++;
      return;
    }
    this.#tracked.set(p.pid, t);
    for (const k of keysOf(containerId, podUid)) {
      let set = this.#byKey.get(k);
      if (!set) this.#byKey.set(k, (set = new Set()));
      set.add(p.pid);
    }
  }

  forget(pid: number): void {
    const t = this.#tracked.get(pid);
    if (!t) return;
    this.#tracked.delete(pid);
    for (const k of keysOf(t.p.cgroup.containerId, t.p.cgroup.podUid)) {
      const set = this.#byKey.get(k);
      set?.delete(pid);
      if (set?.size === 0) this.#byKey.delete(k);
    }
  }

  /** a pod was added or changed, or its owner became known: its processes' resources follow */
  podChanged(pod: SlimPod): void {
    const pids = new Set<number>();
    for (const k of [`p:${pod.metadata.uid}`, ...pod.containers.map((c) => `c:${c.id}`)]) for (const pid of this.#byKey.get(k) ?? []) pids.add(pid);
    for (const pid of pids) {
      const t = this.#tracked.get(pid);
      if (t) this.#apply(t, true);
    }
  }

  /** writes the pod's attributes into the process's resource object, in place */
  #apply(t: Tracked, later: boolean): void {
    const { containerId, podUid } = t.p.cgroup;
    const id = this.#kube.identity(containerId, podUid);
    if (!id) return;
    const r = t.p.resource;
    const before = later ? JSON.stringify(r) : '';
    for (const k of Object.keys(r)) if (OWNED_PREFIXES.some((x) => k.startsWith(x)) && !(k in id.attributes)) delete r[k];
    Object.assign(r, id.attributes);
    if (!t.p.serviceFromEnv) {
      const svc = id.serviceName ?? t.commandService;
      t.p.serviceName = svc;
      r['service.name'] = svc;
    }
    if (!t.complete && id.complete) {
      t.complete = true;
      this.counters.resolved++;
    }
    if (later && JSON.stringify(r) !== before) this.counters.updated++;
  }
}

function keysOf(containerId: string | undefined, podUid: string | undefined): string[] {
  const keys: string[] = [];
  if (containerId !== undefined) keys.push(`c:${containerId}`);
  if (podUid !== undefined) keys.push(`p:${podUid}`);
  return keys;
}

