// Whether Kubernetes metadata is on, with which credentials, for which node (the interface
// pinned in ARCHITECTURE.md): on when `--kubeconfig PATH` is given, or KUBECONFIG is set, or
// in-cluster credentials are present (KUBERNETES_SERVICE_HOST and the service account token
// that a pod gets mounted); the node is --node-name, else NODE_NAME (the downward API's
// spec.nodeName), else this host's name.
//
// No import of the Kubernetes client here: `osprey up` reads these settings on every start,
// and the client costs ~75 MB of RSS and ~0.5 s to load, which only an agent with
// Kubernetes metadata on should pay (setup.ts loads it then).
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';

export const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export interface KubeSettings {
  source: 'flag' | 'KUBECONFIG' | 'in-cluster';
  /** the kubeconfig file(s) (flag, KUBECONFIG); undefined in-cluster */
  kubeconfig: string | undefined;
  nodeName: string;
  /** where the node name came from */
  nodeFrom: 'flag' | 'NODE_NAME' | 'hostname';
}

/** undefined: metadata is off (no credentials of any kind) */
export function kubeSettings(flags: { kubeconfig?: string; nodeName?: string }, env: NodeJS.ProcessEnv = process.env, tokenPath = SERVICE_ACCOUNT_TOKEN): KubeSettings | undefined {
  let source: KubeSettings['source'];
  let kubeconfig: string | undefined;
  if (flags.kubeconfig !== undefined) {
    source = 'flag';
    kubeconfig = flags.kubeconfig;
  } else if (env.KUBECONFIG) {
    source = 'KUBECONFIG';
    kubeconfig = env.KUBECONFIG;
  } else if (env.KUBERNETES_SERVICE_HOST && existsSync(tokenPath)) source = 'in-cluster';
  else return undefined;
  const nodeName = flags.nodeName || env.NODE_NAME || hostname();
  const nodeFrom = flags.nodeName ? 'flag' : env.NODE_NAME ? 'NODE_NAME' : 'hostname';
  return { source, kubeconfig, nodeName, nodeFrom };
}

export class KubeConfigError extends Error {
  constructor(
    message: string,
    readonly hint: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
