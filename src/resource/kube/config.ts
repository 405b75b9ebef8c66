// Whether Kubernetes metadata is on, with which credentials, for which node (the interface
// pinned in ARCHITECTURE.md): on when `--kubeconfig PATH` is given, or KUBECONFIG is set, or
// in-cluster credentials are present (KUBERNETES_SERVICE_HOST and the service account token
// that a pod gets mounted); the node is --node-name, else NODE_NAME (the downward API's
// spec.nodeName), else this host's name.
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';

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

/** the client's configuration for the settings, or a KubeConfigError naming the cause and a fix */
export function loadKubeConfig(s: KubeSettings): KubeConfig {
  const kc = new KubeConfig();
  const where = s.source === 'flag' ? `--kubeconfig ${s.kubeconfig}` : s.source === 'KUBECONFIG' ? `KUBECONFIG=${s.kubeconfig}` : 'the in-cluster service account';
  try {
    if (s.source === 'in-cluster') kc.loadFromCluster();
    else {
      const files = s.kubeconfig!.split(':').filter(Boolean);
      const missing = files.filter((f) => !existsSync(f));
      if (missing.length === files.length) throw new Error(`no such file: ${missing.join(', ')}`);
      // KUBECONFIG may list several files, merged as kubectl merges them
      if (files.length === 1) kc.loadFromFile(files[0]!);
      else kc.loadFromDefault({}, false);
    }
  } catch (err) {
    throw new KubeConfigError(`cannot load Kubernetes credentials from ${where}: ${(err as Error).message}`, 'pass --kubeconfig PATH of a readable kubeconfig, or unset KUBECONFIG to run without Kubernetes metadata', {
      cause: err,
    });
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) {
    throw new KubeConfigError(`no current cluster in ${where}`, 'set current-context in the kubeconfig (kubectl config use-context NAME)');
  }
  return kc;
}
