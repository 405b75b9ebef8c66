import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isIdSegment, routeOf } from './route.js';

describe('routeOf', () => {
  const cases: [string, string][] = [
    // the examples of the spec
    ['/users/123/orders/9f8a7c6e5d4b', '/users/{id}/orders/{id}'],
    ['/', '/'],
    ['', '/'],
    ['/api/v1/health', '/api/v1/health'],
    // numbers and number-like values
    ['/page/2', '/page/{id}'],
    ['/orders/0', '/orders/{id}'],
    ['/reports/2024-01-15/summary', '/reports/{id}/summary'],
    ['/hosts/10.0.0.1/ping', '/hosts/{id}/ping'],
    ['/releases/1.2.3', '/releases/{id}'],
    ['/offset/-1', '/offset/{id}'],
    // UUIDs, hashes
    ['/items/550e8400-e29b-41d4-a716-446655440000', '/items/{id}'],
    ['/items/550E8400-E29B-41D4-A716-446655440000/edit', '/items/{id}/edit'],
    ['/commits/3f786850e387550fdab836ed7e6dc881de23001b', '/commits/{id}'],
    ['/blobs/deadbeef', '/blobs/deadbeef'], // hex-looking word without a digit stays
    ['/hash/0a1b2c3d', '/hash/{id}'],
    // mixed ids and tokens
    ['/orders/ord_8f7H2k9x', '/orders/{id}'],
    ['/invoices/INV-2024-0001', '/invoices/{id}'],
    ['/items/item4567', '/items/{id}'],
    ['/s/aZKqLmNoPqRsTuVw', '/s/{id}'],
    ['/t/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig', '/t/{id}'],
    // static words that must stay
    ['/apis/apps/v1beta1/deployments', '/apis/apps/v1beta1/deployments'],
    ['/api/v2alpha1/things', '/api/v2alpha1/things'],
    ['/auth/oauth2/callback', '/auth/oauth2/callback'],
    ['/digest/sha256', '/digest/sha256'],
    ['/video/h264/stream', '/video/h264/stream'],
    ['/internationalization/settings', '/internationalization/settings'],
    ['/getUserProfileSettings', '/getUserProfileSettings'],
    ['/ALL_CAPS_CONSTANT_NAME', '/ALL_CAPS_CONSTANT_NAME'],
    ['/my-project-name/builds/42', '/my-project-name/builds/{id}'],
    ['/user123', '/user123'], // short mixed word: too ambiguous, kept
    // extensions, encodings, long segments
    ['/files/123.json', '/files/{id}.json'],
    ['/files/report2023.pdf', '/files/{id}.pdf'],
    ['/static/index.html', '/static/index.html'],
    ['/search/hello%20world', '/search/{id}'],
    [`/blog/${'a'.repeat(60)}`, '/blog/{id}'],
    // shape is kept: trailing slash, empty segments
    ['/users/42/', '/users/{id}/'],
    ['/a//b/7', '/a//b/{id}'],
    // query and fragment dropped; absolute-form and odd targets
    ['/users/42?token=abc', '/users/{id}'],
    ['/docs#section-2', '/docs'],
    ['http://example.com:8080/users/42', '/users/{id}'],
    ['http://example.com', '/'],
    ['*', '*'],
    ['users/42', '/users/{id}'],
  ];
  for (const [path, want] of cases) {
    it(`${path.length > 70 ? path.slice(0, 70) + '…' : path || '(empty)'} -> ${want}`, () => {
      assert.equal(routeOf(path), want);
    });
  }

  it('is idempotent', () => {
    for (const [path] of cases) {
      const r = routeOf(path);
      assert.equal(routeOf(r), r, path);
    }
  });

  it('bounds cardinality: 10 000 distinct ids give one route', () => {
    const routes = new Set<string>();
    for (let i = 0; i < 10_000; i++) {
      const uuid = `${(i * 2654435761).toString(16).padStart(8, '0').slice(-8)}-1234-4abc-8def-${i.toString(16).padStart(12, '0')}`;
      routes.add(routeOf(`/tenants/${i}/objects/${uuid}/versions/${(i * 7919).toString(16).padStart(10, 'a')}`));
    }
    assert.deepEqual([...routes], ['/tenants/{id}/objects/{id}/versions/{id}']);
  });

  it('bounds length', () => {
    assert.ok(routeOf('/a'.repeat(1000)).length <= 512);
  });

  it('isIdSegment on its own', () => {
    assert.equal(isIdSegment('123'), true);
    assert.equal(isIdSegment('v1'), false);
    assert.equal(isIdSegment('V2'), false);
    assert.equal(isIdSegment('health'), false);
    assert.equal(isIdSegment(''), false);
  });
});
