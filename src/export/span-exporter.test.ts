// The queue's rules with a scripted transport: a test double of the Transport interface that
// answers what the script says (the real collector, outages and refusals are in
// test/export.test.ts; this covers what a real collector cannot be made to answer on cue:
// Retry-After, and one answer of each kind in a row).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Span } from '../model/index.js';
import type { ExportTarget } from './config.js';
import { SpanExporter } from './span-exporter.js';
import type { SendResult, Transport } from './transport.js';

const target: ExportTarget = { signal: 'traces', protocol: 'http/protobuf', url: 'http://127.0.0.1:1/v1/traces', headers: {}, compression: 'gzip', timeoutMs: 1000 };
const resource = { 'service.name': 's', 'process.pid': 1 };
let n = 0;
const spans = (k: number): Span[] =>
  Array.from({ length: k }, () =>
    Span.from({
    traceId: (++n).toString(16).padStart(32, '0'),
    spanId: n.toString(16).padStart(16, '0'),
    parentSpanId: '',
    name: 'GET /x',
    kind: 'server' as const,
    startTimeUnixNano: 1n,
    durationNano: 1,
    status: 'unset' as const,
    resource,
      attributes: { 'url.path': '/x' },
    }),
  );

/** answers from the script, in order (the last one repeats); records when each send came */
class ScriptedTransport implements Transport {
  readonly sends: number[] = [];
  constructor(private readonly script: SendResult[]) {}
  send(): Promise<SendResult> {
    this.sends.push(Date.now());
    return Promise.resolve(this.script[Math.min(this.sends.length - 1, this.script.length - 1)]!);
  }
  shutdown(): void {}
}

describe('span exporter queue', () => {
  it('retries a retryable answer after Retry-After, then delivers; counts are exact', async () => {
    const t = new ScriptedTransport([{ kind: 'retry', reason: 'HTTP 429', retryAfterMs: 300 }, { kind: 'retry', reason: 'HTTP 503', retryAfterMs: 200 }, { kind: 'ok' }]);
    const lines: string[] = [];
    const e = new SpanExporter({ target, queueBytes: 1 << 20, transport: t, batchDelayMs: 20, log: (l) => lines.push(l) });
    e.consume(spans(10));
    assert.ok(await e.forceFlush(5000));
    assert.equal(t.sends.length, 3);
    assert.ok(t.sends[1]! - t.sends[0]! >= 290, `waited ${t.sends[1]! - t.sends[0]!} ms for Retry-After: 300 ms`);
    assert.ok(t.sends[2]! - t.sends[1]! >= 190);
    assert.deepEqual({ sent: e.counters.sent, retried: e.counters.retried, retries: e.counters.retries }, { sent: 10, retried: 20, retries: 2 });
    assert.equal(Object.values(e.counters.dropped).reduce((a, b) => a + b, 0), 0);
    assert.match(lines.join('\n'), /unavailable \(HTTP 429\).*retrying in 0\.3 s/);
    assert.match(lines.join('\n'), /accepting spans again/);
    await e.shutdown();
  });

  it('a permanent refusal drops the batch (counted, logged once) and the next batch goes on', async () => {
    const t = new ScriptedTransport([{ kind: 'fail', reason: 'HTTP 400: bad' }, { kind: 'fail', reason: 'HTTP 400: bad' }, { kind: 'ok' }]);
    const lines: string[] = [];
    const e = new SpanExporter({ target, queueBytes: 1 << 20, transport: t, batchSpans: 4, batchDelayMs: 20, log: (l) => lines.push(l) });
    e.consume(spans(12)); // three batches of 4
    assert.ok(await e.forceFlush(5000));
    assert.equal(e.counters.dropped.rejected, 8);
    assert.equal(e.counters.sent, 4);
    assert.equal(e.counters.retried, 0);
    assert.equal(lines.filter((l) => /refused a batch/.test(l)).length, 1);
    await e.shutdown();
  });

  it('a full queue drops whole new batches, keeps what it holds; shutdown counts what is left', async () => {
    const t = new ScriptedTransport([{ kind: 'retry', reason: 'ECONNREFUSED' }]);
    const e = new SpanExporter({ target, queueBytes: 1500, transport: t, batchSpans: 5, batchDelayMs: 10_000, backoffMs: [50, 50] });
    for (let i = 0; i < 20; i++) {
      e.consume(spans(5));
      await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 100));
    const c = e.counters;
    assert.equal(c.consumed, 100);
    assert.ok(c.dropped.queue_full > 0, 'the 1500-byte budget was used up');
    assert.equal(c.consumed, c.sent + c.dropped.queue_full + e.queuedSpans + e.openSpans);
    const queued = e.queuedSpans;
    await e.shutdown(200);
    assert.equal(c.dropped.shutdown, queued);
    assert.equal(c.consumed, c.sent + c.dropped.queue_full + c.dropped.shutdown);
    // after shutdown: counted, never queued
    e.consume(spans(3));
    assert.equal(c.dropped.shutdown, queued + 3);
  });

  it('partial success: the rejected spans of an accepted batch are counted apart', async () => {
    // ExportTraceServiceResponse{partial_success{rejected_spans: 2, error_message: "too old"}}
    const response = Buffer.from([0x0a, 0x0b, 0x08, 0x02, 0x12, 0x07, ...Buffer.from('too old')]);
    const t = new ScriptedTransport([{ kind: 'ok', response }]);
    const e = new SpanExporter({ target, queueBytes: 1 << 20, transport: t, batchDelayMs: 20 });
    e.consume(spans(5));
    assert.ok(await e.forceFlush(5000));
    assert.equal(e.counters.sent, 3);
    assert.equal(e.counters.dropped.partial_rejected, 2);
    await e.shutdown();
  });
});
