// DuckStore.memory(): DuckDB's own accounting of its buffer pool, as `osprey status` shows it.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Span } from '../model/index.js';
import { DuckStore } from './index.js';

const NOW = BigInt(Date.now()) * 1_000_000n;

describe('DuckStore.memory', () => {
  it('reports the memory_limit asked for and what the rows appended since the last checkpoint hold', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'osprey-store-mem-'));
    const store = await DuckStore.open({ path: join(dir, 'spans.duckdb'), memoryLimit: '64MB', retention: { intervalMs: 0 } });
    try {
      const empty = await store.memory();
      // DuckDB reports 64MB (10^6) in binary units: "61.0 MiB"
      assert.equal(empty.limit, '61.0 MiB');
      assert.ok(Math.abs(empty.limitBytes - 64e6) < 0.01 * 64e6, String(empty.limitBytes));
      const spans: Span[] = [];
      for (let i = 0; i < 20_000; i++) {
        spans.push(
          Span.from({
            traceId: (i + 1).toString(16).padStart(32, '0'),
            spanId: (i + 1).toString(16).padStart(16, '0'),
            parentSpanId: '',
            name: `GET /r/${i}`,
            kind: 'server',
            startTimeUnixNano: NOW - BigInt(20_000 - i) * 1_000_000n,
            durationNano: 1000 + i,
            status: 'unset',
            resource: { 'service.name': 'svc' },
            attributes: { 'url.path': `/r/${i}/${'x'.repeat(40)}`, 'http.response.status_code': 200 },
          }),
        );
      }
      store.append(spans);
      await store.flush();
      const full = await store.memory();
      assert.ok(full.usedBytes > empty.usedBytes, `${full.usedBytes} after 20k spans vs ${empty.usedBytes} empty`);
      assert.ok(full.usedBytes <= full.limitBytes);
      assert.equal(full.usedBytes, Object.values(full.byTag).reduce((a, b) => a + b, 0));
      for (const tag of Object.keys(full.byTag)) assert.match(tag, /^[a-z_]+$/);
      assert.ok(full.temporaryStorageBytes >= 0);
    } finally {
      await store.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
