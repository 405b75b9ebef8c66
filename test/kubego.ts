// The Kubernetes-shaped Go peers of test/fixtures/kubego (client-go, a FAKE API server, an
// admission webhook and its caller), built once with this machine's Go and cached.
// client-go v0.36 needs Go >= 1.26: Debian's Go 1.19 cannot build it, so only the current Go is
// used (the Go crypto/tls uprobes are proven on 1.19 by go-h2-tls.test.ts).
import { resolve } from 'node:path';
import { buildGoModule } from './go-module.js';

/** every k8s.io module at one release, as client-go requires */
const K8S = 'v0.36.4';

export function buildKubeGo(): string {
  return buildGoModule(resolve('test/fixtures/kubego'), 'kubego', [`k8s.io/client-go@${K8S}`, `k8s.io/api@${K8S}`, `k8s.io/apimachinery@${K8S}`]);
}
