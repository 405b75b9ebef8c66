// The agent's memory settings reach the process `osprey up` starts, and `osprey status` tells
// what its memory is made of: bin/osprey limits glibc's malloc arenas (unless the user set
// MALLOC_ARENA_MAX), the store's DuckDB memory_limit is the one asked for, and the resident
// figures agree with the kernel's.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, OSPREY, ospreyUp, run, waitFor } from './helpers.js';
import type { SelfMemoryReport } from '../src/cli/self-memory.js';

async function memoryOf(url: string): Promise<SelfMemoryReport> {
  const st = await run(OSPREY, ['status', '--server', url, '--json']);
  assert.equal(st.code, 0, st.stderr);
  return (JSON.parse(st.stdout) as { memory: SelfMemoryReport }).memory;
}

function environ(pid: number): string[] {
  return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
}

describe('osprey up memory settings', { timeout: 300_000 }, () => {
  it('bin/osprey sets the allocators\' limits; status shows them, the DuckDB memory limit and RSS as the kernel counts it', async () => {
    const data = mkdtempSync(join(tmpdir(), 'osprey-mem-'));
    // the test runner's own environment must not decide the outcome
    const agent = await ospreyUp(['--data', data, '--listen', `127.0.0.1:${await freePort()}`, '--no-ui', '--store-memory', '96MB'], { MALLOC_ARENA_MAX: undefined, DUCKDB_JE_MALLOC_CONF: undefined });
    try {
      const env = environ(agent.pid);
      assert.ok(env.includes('MALLOC_ARENA_MAX=2'), 'glibc reads MALLOC_ARENA_MAX from the environment the process started with');
      assert.ok(env.includes('DUCKDB_JE_MALLOC_CONF=dirty_decay_ms:500,muzzy_decay_ms:0'), "DuckDB's jemalloc reads DUCKDB_JE_MALLOC_CONF when it starts");
      // DuckDB's figures come from a query in the background: the first one lands soon after start
      const m = await waitFor('DuckDB memory in status', async () => {
        const x = await memoryOf(agent.url);
        return x.store ? x : undefined;
      }, 30_000, 200);
      assert.equal(m.mallocArenaMax, 2);
      assert.equal(m.duckdbAllocatorConf, 'dirty_decay_ms:500,muzzy_decay_ms:0');
      // DuckDB reports 96MB (10^6) as "91.5 MiB"
      assert.match(m.store!.limit, /MiB|MB/);
      assert.ok(Math.abs(m.store!.limitBytes - 96e6) < 0.01 * 96e6, `memory_limit ${m.store!.limit} = ${m.store!.limitBytes} bytes`);
      assert.ok(m.store!.usedBytes >= 0 && m.store!.usedBytes <= m.store!.limitBytes);
      const vmRss = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${agent.pid}/status`, 'utf8'))![1]) * 1024;
      assert.ok(Math.abs(m.rssBytes - vmRss) < 0.25 * vmRss, `status RSS ${m.rssBytes} vs the kernel's ${vmRss}`);
      assert.equal(m.anonymousBytes + m.fileBytes, m.rssBytes);
      assert.ok(m.fileBytes > 20 * 2 ** 20, 'node and libduckdb text are file-backed');
      assert.ok(m.peakRssBytes >= m.rssBytes * 0.9);
      assert.ok(m.v8.totalBytes >= m.v8.usedBytes && m.v8.newSpaceBytes > 0 && m.v8.totalBytes > m.v8.newSpaceBytes);
      const text = await run(OSPREY, ['status', '--server', agent.url]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /^memory: +RSS \d+ MB \(peak \d+ MB\) = anonymous \d+ MB \+ file-backed \d+ MB; V8 heap .*DuckDB \d+ MB of memory_limit 91\.5 MiB; malloc arenas max 2; DuckDB allocator dirty_decay_ms:500,muzzy_decay_ms:0$/m);
      // a setting DuckDB's jemalloc did not understand would be on the agent's stderr
      assert.doesNotMatch(agent.err(), /<jemalloc>/);
    } finally {
      const code = await agent.stop();
      assert.equal(code, 0, agent.err().slice(-2000));
      rmSync(data, { recursive: true, force: true });
    }
  });

  it('settings the user made win; an in-memory store reports DuckDB\'s own limit', async () => {
    const conf = 'dirty_decay_ms:2000,muzzy_decay_ms:1000';
    const agent = await ospreyUp(['--memory', '--listen', `127.0.0.1:${await freePort()}`, '--no-ui'], { MALLOC_ARENA_MAX: '4', DUCKDB_JE_MALLOC_CONF: conf });
    try {
      assert.ok(environ(agent.pid).includes('MALLOC_ARENA_MAX=4'));
      const m = await waitFor('DuckDB memory in status', async () => {
        const x = await memoryOf(agent.url);
        return x.store ? x : undefined;
      }, 30_000, 200);
      assert.equal(m.mallocArenaMax, 4);
      assert.equal(m.duckdbAllocatorConf, conf);
      // DuckDB's default in memory is 80% of RAM: far above the file store's 128MB
      assert.ok(m.store!.limitBytes > 1e9, `memory_limit ${m.store!.limit}`);
    } finally {
      const code = await agent.stop();
      assert.equal(code, 0, agent.err().slice(-2000));
    }
  });
});
