import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Span } from './index.js';
import { timePerService } from './service-time.js';

const MS = 1_000_000;
const T0 = 1_700_000_000_000_000_000n;
function span(id: number, parent: number, svc: string, startMs: number, durMs: number, status: 'unset' | 'error' = 'unset'): Span {
  return Span.from({ traceId: 'a'.repeat(32), spanId: id.toString(16).padStart(16, '0'), parentSpanId: parent ? parent.toString(16).padStart(16, '0') : '', name: `s${id}`, kind: 'server', startTimeUnixNano: T0 + BigInt(startMs * MS), durationNano: durMs * MS, status, resource: { 'service.name': svc }, attributes: {} });
}
const bySvc = (s: Span) => String(s.resource['service.name']);

describe('timePerService', () => {
  it('self time: parallel children counted once, a child outliving its parent clipped, orphans are their own', () => {
    const spans = [
      span(1, 0, 'front', 0, 100),
      // two parallel calls over [10, 50] and [30, 70]: 60 ms covered, not 80
      span(2, 1, 'api', 10, 40),
      span(3, 1, 'db', 30, 40, 'error'),
      // a child running past its parent's end takes only the parent's part: [90, 100]
      span(4, 1, 'api', 90, 30),
      // its parent is not stored: all of it is its own
      span(5, 99, 'batch', 0, 7),
    ];
    assert.deepEqual(timePerService(spans, bySvc), [
      { service: 'api', selfNs: 70 * MS, spans: 2, errors: 0 },
      { service: 'db', selfNs: 40 * MS, spans: 1, errors: 1 },
      { service: 'front', selfNs: 30 * MS, spans: 1, errors: 0 },
      { service: 'batch', selfNs: 7 * MS, spans: 1, errors: 0 },
    ]);
  });
});
