// The slim shapes Osprey keeps of Kubernetes objects. A Pod as the API server sends it is
// 5-20 KB of JSON (spec, conditions, managedFields); the informer caches keep only what
// naming needs, so the memory per cached object is a few hundred bytes (the same idea as the
// OpenTelemetry Collector's k8sattributes transform). Lists come from the generated client
// (typed objects) and watch events as plain JSON: both have the same camelCase field names,
// and slimming them here makes the two alike.

/** what ListWatch needs of an object: its name, namespace and version */
export interface SlimMeta {
  name: string;
  namespace: string;
  uid: string;
  resourceVersion: string;
}

export interface OwnerRef {
  kind: string;
  name: string;
}

export interface SlimContainer {
  /** the runtime's container id (64 hex, without the `containerd://` scheme) */
  id: string;
  name: string;
}

export interface SlimPod {
  metadata: SlimMeta;
  /** the controller owner (ownerReferences[controller=true]) */
  owner: OwnerRef | undefined;
  /** labels and annotations that name services (the rest is dropped) */
  appName: string | undefined;
  /** annotation resource.opentelemetry.io/service.name (the OpenTelemetry Operator's convention) */
  serviceAnnotation: string | undefined;
  nodeName: string;
  hostNetwork: boolean;
  ips: string[];
  /** containers, init and ephemeral ones included, that have an id (started at least once) */
  containers: SlimContainer[];
}

export interface SlimService {
  metadata: SlimMeta;
  appName: string | undefined;
  /** spec.clusterIPs (without "None": headless services have no virtual IP) */
  ips: string[];
}

type Json = Record<string, unknown>;

const obj = (v: unknown): Json => (typeof v === 'object' && v !== null ? (v as Json) : {});
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function slimMeta(o: Json): SlimMeta {
  const m = obj(o['metadata']);
  return { name: str(m['name']), namespace: str(m['namespace']), uid: str(m['uid']), resourceVersion: str(m['resourceVersion']) };
}

export const APP_NAME_LABEL = 'app.kubernetes.io/name';
export const SERVICE_NAME_ANNOTATION = 'resource.opentelemetry.io/service.name';

/** the controller among ownerReferences (there is at most one) */
export function controllerOf(metadata: unknown): OwnerRef | undefined {
  for (const r of arr(obj(metadata)['ownerReferences'])) {
    const ref = obj(r);
    if (ref['controller'] === true) return { kind: str(ref['kind']), name: str(ref['name']) };
  }
  return undefined;
}

/** `containerd://<id>`, `cri-o://<id>`, `docker://<id>` → `<id>` */
export function containerIdOf(containerID: string): string {
  const i = containerID.indexOf('://');
  return (i < 0 ? containerID : containerID.slice(i + 3)).toLowerCase();
}

export function slimPod(raw: unknown): SlimPod {
  const o = obj(raw);
  const m = obj(o['metadata']);
  const spec = obj(o['spec']);
  const status = obj(o['status']);
  const labels = obj(m['labels']);
  const annotations = obj(m['annotations']);
  const ips = arr(status['podIPs'])
    .map((x) => str(obj(x)['ip']))
    .filter(Boolean);
  const podIP = str(status['podIP']);
  if (podIP && !ips.includes(podIP)) ips.unshift(podIP);
  const containers: SlimContainer[] = [];
  for (const key of ['containerStatuses', 'initContainerStatuses', 'ephemeralContainerStatuses']) {
    for (const s of arr(status[key])) {
      const cs = obj(s);
      const id = str(cs['containerID']);
      if (id) containers.push({ id: containerIdOf(id), name: str(cs['name']) });
    }
  }
  return {
    metadata: slimMeta(o),
    owner: controllerOf(m),
    appName: str(labels[APP_NAME_LABEL]) || undefined,
    serviceAnnotation: str(annotations[SERVICE_NAME_ANNOTATION]) || undefined,
    nodeName: str(spec['nodeName']),
    hostNetwork: spec['hostNetwork'] === true,
    ips,
    containers,
  };
}

export function slimService(raw: unknown): SlimService {
  const o = obj(raw);
  const spec = obj(o['spec']);
  const ips = arr(spec['clusterIPs']).map(str);
  const one = str(spec['clusterIP']);
  if (one && !ips.includes(one)) ips.unshift(one);
  return {
    metadata: slimMeta(o),
    appName: str(obj(obj(o['metadata'])['labels'])[APP_NAME_LABEL]) || undefined,
    ips: ips.filter((ip) => ip !== '' && ip !== 'None'),
  };
}
