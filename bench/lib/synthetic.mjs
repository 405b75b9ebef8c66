// The synthetic spans the store benches load: 50 services, 500 routes, HTTP request trees
// up to depth 4 (server span → client calls → server spans of the callees), long-tailed
// durations, 1% errors. Deterministic (fixed seed): two runs store the same spans, except
// that times are relative to `nowNs`.

/**
 * @param {{ Span: any, nowNs: bigint }} deps
 * @returns {{ generate: (n: number, batch: number) => Generator<any[]>, traceIds: string[], SERVICES: number, ROUTES: number, spanWindowNs: bigint }}
 */
export function synthetic({ Span, nowNs }) {
  const traceIds = [];
  const SERVICES = 50;
  const ROUTES = 500;

  // ---- deterministic synthetic data -----------------------------------------------------------
  let seed = 42;
  const rand = () => {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    return seed / 4294967296;
  };
  const gauss = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
  const hex = (n) => {
    let s = '';
    for (let i = 0; i < n; i++) s += '0123456789abcdef'[Math.floor(rand() * 16)];
    return s;
  };

  const resources = Array.from({ length: SERVICES }, (_, i) => ({
    'service.name': `svc-${i}`,
    'process.pid': 1000 + i,
    'process.executable.name': `svc-${i}`,
    'host.name': `node-${i % 5}`,
    'k8s.namespace.name': `ns-${i % 4}`,
    'k8s.pod.name': `svc-${i}-7d9f8b-${hex(5)}`,
    'k8s.deployment.name': `svc-${i}`,
    'container.id': hex(64),
  }));
  const routes = Array.from({ length: ROUTES }, (_, i) => `/api/v1/r${i}/{id}`);
  const routeService = routes.map((_, i) => i % SERVICES);

  const spanWindowNs = 2n * 3600n * 1_000_000_000n; // data spread over the last 2 hours

  /** One request served by `svc` on `route`, with downstream calls; pushes spans into out. */
  function request(out, traceId, parent, svcIdx, routeIdx, startNs, durNs, depth) {
    const path = routes[routeIdx].replace('{id}', String(Math.floor(rand() * 100000)));
    const err = rand() < 0.01;
    const server = Span.from({
      traceId,
      spanId: hex(16),
      parentSpanId: parent,
      name: `GET ${routes[routeIdx]}`,
      kind: 'server',
      startTimeUnixNano: startNs,
      durationNano: durNs,
      status: err ? 'error' : 'unset',
      resource: resources[svcIdx],
      attributes: {
        'http.request.method': 'GET',
        'url.path': path,
        'http.route': routes[routeIdx],
        'http.response.status_code': err ? 503 : 200,
        'server.address': `svc-${svcIdx}`,
        'server.port': 8080,
        'client.address': `10.0.${depth}.${Math.floor(rand() * 250)}`,
        'network.peer.address': `10.0.${depth}.${Math.floor(rand() * 250)}`,
        'network.peer.port': 40000 + Math.floor(rand() * 20000),
        'osprey.link': parent ? 'tuple' : 'none',
      },
    });
    out.push(server);
    if (depth >= 3) return;
    const calls = Math.floor(rand() * 3) + (depth === 0 ? 1 : 0);
    let t = startNs + BigInt(Math.floor(durNs * 0.05));
    for (let c = 0; c < calls; c++) {
      const calleeRoute = Math.floor(rand() * ROUTES);
      const callee = routeService[calleeRoute];
      const cDur = Math.max(50_000, Math.floor((durNs * (0.2 + rand() * 0.5)) / calls));
      const client = Span.from({
        traceId,
        spanId: hex(16),
        parentSpanId: server.spanId,
        name: `GET ${routes[calleeRoute]}`,
        kind: 'client',
        startTimeUnixNano: t,
        durationNano: cDur,
        status: 'unset',
        resource: resources[svcIdx],
        attributes: {
          'http.request.method': 'GET',
          'url.path': routes[calleeRoute].replace('{id}', '1'),
          'url.full': `http://svc-${callee}:8080${routes[calleeRoute].replace('{id}', '1')}`,
          'http.route': routes[calleeRoute],
          'http.response.status_code': 200,
          'server.address': `svc-${callee}`,
          'server.port': 8080,
          'osprey.link': 'thread',
        },
      });
      out.push(client);
      request(out, traceId, client.spanId, callee, calleeRoute, t + 100_000n, Math.max(20_000, cDur - 200_000), depth + 1);
      t += BigInt(cDur);
    }
  }

  /** Streams the synthetic spans in batches, so that only the store holds the whole data set. */
  function* generate(n, batch) {
    let made = 0;
    let pending = [];
    while (made < n) {
      const traceId = hex(32);
      traceIds.push(traceId);
      // traces start evenly over the window, oldest first (the store sees them in time order)
      const startNs = nowNs - spanWindowNs + (spanWindowNs * BigInt(made)) / BigInt(n);
      // long-tailed: log-normal around 20 ms
      const dur = Math.min(30e9, Math.floor(20e6 * Math.exp(1.3 * gauss())));
      const route = Math.floor(rand() * ROUTES);
      const before = pending.length;
      request(pending, traceId, '', routeService[route], route, startNs, dur, 0);
      made += pending.length - before;
      if (made > n) pending.length -= made - n;
      while (pending.length >= batch) yield pending.splice(0, batch);
      if (made >= n && pending.length > 0) yield pending.splice(0);
    }
  }
  return { generate, traceIds, SERVICES, ROUTES, spanWindowNs };
}
