// What went wrong talking to the Kubernetes API, in words a person can act on. The client
// reports failures three ways: the generated API's ApiException (`code`, `body` holding the
// server's Status), the watch's Error (`statusCode`), and a fetch error (`code` ECONNREFUSED…).

/** the Status message in an ApiException body, when it has one */
function statusMessage(body: unknown): string | undefined {
  let b = body;
  if (typeof b === 'string') {
    try {
      b = JSON.parse(b);
    } catch {
      return undefined;
    }
  }
  if (typeof b === 'object' && b !== null && typeof (b as { message?: unknown }).message === 'string') return (b as { message: string }).message;
  return undefined;
}

/** the HTTP status of a client error, if it is one */
export function httpStatusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e.statusCode === 'number') return e.statusCode;
  if (typeof e.code === 'number') return e.code;
  return undefined;
}

export function describeKubeError(err: unknown, what: string, server: string): string {
  const status = httpStatusOf(err);
  const detail = statusMessage((err as { body?: unknown } | null)?.body);
  switch (status) {
    case 401:
      return `Kubernetes API ${server}: unauthorized (401) reading ${what}: the credentials were rejected (expired token? wrong kubeconfig user?)`;
    case 403:
      return (
        `Kubernetes API ${server}: forbidden (403) reading ${what}${detail ? `: ${detail}` : ''}; ` +
        'the agent\'s service account needs get, list and watch on pods, services, replicasets and jobs (`osprey manifests` has the ClusterRole)'
      );
    case 404:
      return `Kubernetes API ${server}: not found (404) reading ${what}${detail ? `: ${detail}` : ''}`;
    case undefined:
      break;
    default:
      return `Kubernetes API ${server}: HTTP ${status} reading ${what}${detail ? `: ${detail}` : ''}`;
  }
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  const msg = typeof e?.message === 'string' ? e.message.split('\n')[0] : String(err);
  if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENOTFOUND' || code === 'ETIMEDOUT' || code === 'ECONNRESET') {
    return `Kubernetes API ${server} unreachable (${code}) reading ${what}: is the API server up and the kubeconfig's server address right?`;
  }
  return `Kubernetes API ${server}: ${msg} reading ${what}`;
}
