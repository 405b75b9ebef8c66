// A client span to a ClusterIP whose server is not traced (another node, a managed service):
// the peer attributes the agent adds (peer.service from the Service) make Tempo's service
// graph count the call for that server service, as a virtual node, instead of dropping it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ServiceGraph, type CompletedEdge } from '../../metrics/servicegraph.js';
import { Span } from '../../model/index.js';

function clientSpan(attributes: Span['attributes']): Span {
  return Span.from({
    traceId: 'a'.repeat(32),
    spanId: 'b'.repeat(16),
    parentSpanId: '',
    name: 'GET /api/item/{id}',
    kind: 'client',
    startTimeUnixNano: 1_700_000_000_000_000_000n,
    durationNano: 2_000_000,
    status: 'unset',
    resource: { 'service.name': 'checkout', 'k8s.namespace.name': 'shop' },
    attributes: { 'http.request.method': 'GET', 'network.peer.address': '10.96.142.7', 'network.peer.port': 80, ...attributes },
  });
}

describe('service graph with Kubernetes peers', () => {
  it('an unanswered client span to a Service counts for that Service, across namespaces', () => {
    const edges: CompletedEdge[] = [];
    const g = new ServiceGraph({ waitMs: 10, onEdge: (e) => edges.push(e) });
    g.observe('checkout', clientSpan({ 'peer.service': 'inventory', 'peer.k8s.service.name': 'inventory', 'peer.k8s.namespace.name': 'stock' }), 0);
    g.expire(100);
    assert.equal(edges.length, 1);
    assert.equal(edges[0]!.client, 'checkout');
    assert.equal(edges[0]!.server, 'inventory');
  });

  it('without the peer attributes the same call is lost to the graph (what the metadata fixes)', () => {
    const edges: CompletedEdge[] = [];
    const g = new ServiceGraph({ waitMs: 10, onEdge: (e) => edges.push(e) });
    g.observe('checkout', clientSpan({}), 0);
    g.expire(100);
    assert.equal(edges.length, 0);
    assert.equal(g.counters.expired, 1);
  });
});
