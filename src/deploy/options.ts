// What a cluster deployment is parameterised by, with defaults that fit the reference
// pipeline (Tempo, Mimir and Loki in the `observability` namespace, installed by their
// Helm charts under their usual Service names). Every value is checked here, once, so the
// object builders can trust it.

export interface DeployOptions {
  /** namespace of every namespaced object */
  namespace: string;
  /** the Osprey agent image (built from this repository) */
  image: string;
  /** the collector image: contrib or k8s distribution (the core one has no k8sattributes and no prometheusremotewrite) */
  collectorImage: string;
  /** Tempo's OTLP/gRPC ingest, host:port (its distributor) */
  tempoOtlp: string;
  /** Tempo's query API, base URL (its query-frontend), for Grafana */
  tempoQuery: string;
  /** Mimir's remote-write push URL (its distributor), for the collector and Tempo's metrics-generator */
  mimirWrite: string;
  /** Mimir's PromQL base URL (query-frontend + /prometheus), for Grafana */
  mimirQuery: string;
  /** Loki's OTLP base URL (the exporter appends /v1/logs) */
  lokiOtlp: string;
  /** Loki's query base URL, for Grafana */
  lokiQuery: string;
  /** X-Scope-OrgID sent to Tempo, Mimir and Loki ("anonymous" when multi-tenancy is off) */
  tenant: string;
}

/** the operator release whose CRD the OpenTelemetryCollector is written and tested against */
export const OPERATOR_VERSION = '0.140.0';

export const DEFAULTS: DeployOptions = {
  namespace: 'osprey',
  image: 'osprey:0.1.0',
  // pinned to the operator release above: component names are the ones that version knows
  collectorImage: `otel/opentelemetry-collector-contrib:${OPERATOR_VERSION}`,
  tempoOtlp: 'tempo-distributor.observability.svc:4317',
  tempoQuery: 'http://tempo-query-frontend.observability.svc:3200',
  mimirWrite: 'http://mimir-distributor.observability.svc:8080/api/v1/push',
  mimirQuery: 'http://mimir-query-frontend.observability.svc:8080/prometheus',
  lokiOtlp: 'http://loki-gateway.observability.svc/otlp',
  lokiQuery: 'http://loki-gateway.observability.svc',
  tenant: 'anonymous',
};

export class DeployOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeployOptionError';
  }
}

/** RFC 1123 label: what Kubernetes accepts as a namespace name */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** host:port, the host a DNS name or an IPv4 address or a bracketed IPv6 one */
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?):(\d{1,5})$/;
/** what a container runtime takes as an image reference: no spaces, no scheme */
const IMAGE = /^[a-z0-9][a-z0-9._\-/:@]*$/i;

/** defaults, then `given`, each value checked; throws DeployOptionError naming the flag */
export function resolveOptions(given: Partial<DeployOptions> = {}): DeployOptions {
  const o: DeployOptions = { ...DEFAULTS };
  for (const [k, v] of Object.entries(given) as [keyof DeployOptions, string | undefined][]) if (v !== undefined) o[k] = v;
  if (!DNS_LABEL.test(o.namespace)) {
    throw new DeployOptionError(`--namespace must be a DNS label (lowercase letters, digits and "-", at most 63), got "${o.namespace}"`);
  }
  for (const [flag, v] of [
    ['image', o.image],
    ['collector-image', o.collectorImage],
  ] as const) {
    if (!IMAGE.test(v) || v.includes('://')) throw new DeployOptionError(`--${flag} must be an image reference such as registry/name:tag, got "${v}"`);
  }
  const hp = HOST_PORT.exec(o.tempoOtlp);
  if (!hp || Number(hp[3]) > 65535) throw new DeployOptionError(`--tempo-otlp must be HOST:PORT of Tempo's OTLP/gRPC receiver, got "${o.tempoOtlp}"`);
  for (const [flag, v] of [
    ['tempo-query', o.tempoQuery],
    ['mimir-write', o.mimirWrite],
    ['mimir-query', o.mimirQuery],
    ['loki-otlp', o.lokiOtlp],
    ['loki-query', o.lokiQuery],
  ] as const) {
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      throw new DeployOptionError(`--${flag} must be an http(s) URL, got "${v}"`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new DeployOptionError(`--${flag} must be an http(s) URL, got "${v}"`);
    if (u.username || u.password) throw new DeployOptionError(`--${flag}: put no credentials in the URL (they would be written into the manifests in clear)`);
  }
  if (!/^[A-Za-z0-9!\-_.*'()]{1,150}$/.test(o.tenant)) {
    throw new DeployOptionError(`--tenant must be a Mimir/Loki/Tempo tenant id (letters, digits, !-_.*'(), at most 150), got "${o.tenant}"`);
  }
  return o;
}
