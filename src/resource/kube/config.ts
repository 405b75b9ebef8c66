// The Kubernetes client's configuration for the settings (./settings.ts).
import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeConfigError, type KubeSettings } from './settings.js';

export { kubeSettings, KubeConfigError, SERVICE_ACCOUNT_TOKEN, type KubeSettings } from './settings.js';

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
