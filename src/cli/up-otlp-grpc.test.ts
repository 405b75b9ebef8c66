// `osprey up --otlp-grpc`: the default (on with a store, off with --no-store), the flag's forms,
// and what a taken port does (a warning for the default, an error with a fix for an address the
// user gave), against real sockets.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { DuckStore } from '../store/index.js';
import { startServer } from '../server/server.js';
import { OTLP_GRPC_DEFAULT } from '../server/otlp-grpc.js';
import { UsageError } from './cli.js';
import { parseListen } from './up.js';
import { parseOtlpGrpcFlag, startOtlpGrpcFor } from './up-otlp-grpc.js';

describe('osprey up --otlp-grpc', () => {
  it('defaults to 127.0.0.1:4317 with a store and to off with --no-store; off, on and HOST:PORT are understood', () => {
    assert.deepEqual(parseOtlpGrpcFlag(undefined, false, parseListen), { ...OTLP_GRPC_DEFAULT, explicit: false });
    assert.equal(OTLP_GRPC_DEFAULT.host, '127.0.0.1');
    assert.equal(OTLP_GRPC_DEFAULT.port, 4317);
    assert.equal(parseOtlpGrpcFlag(undefined, true, parseListen), undefined);
    assert.equal(parseOtlpGrpcFlag('off', false, parseListen), undefined);
    assert.deepEqual(parseOtlpGrpcFlag('on', true, parseListen), { ...OTLP_GRPC_DEFAULT, explicit: true });
    assert.deepEqual(parseOtlpGrpcFlag('0.0.0.0:14317', false, parseListen), { host: '0.0.0.0', port: 14317, explicit: true });
    assert.deepEqual(parseOtlpGrpcFlag('[::1]:4317', false, parseListen), { host: '::1', port: 4317, explicit: true });
    for (const bad of ['4317', 'localhost', '127.0.0.1:99999', 'yes']) {
      assert.throws(() => parseOtlpGrpcFlag(bad, false, parseListen), (e: unknown) => e instanceof UsageError && /--otlp-grpc must be HOST:PORT/.test(e.message), bad);
    }
  });

  it('a taken port: a warning when it is the default, an error with a fix when it was asked for', async () => {
    const store = await DuckStore.open({});
    const http = await startServer({ store, status: () => ({}), metrics: () => '' }, { host: '127.0.0.1', port: 0 });
    const holder: Server = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    try {
      const said: string[] = [];
      const none = await startOtlpGrpcFor({ host: '127.0.0.1', port, explicit: false }, http.otlp, (s) => said.push(s));
      assert.equal(none, undefined);
      assert.match(said.join('\n'), new RegExp(`warning: OTLP/gRPC receiver not started: cannot listen for OTLP/gRPC on 127\\.0\\.0\\.1:${port}: the port is in use`));
      await assert.rejects(startOtlpGrpcFor({ host: '127.0.0.1', port, explicit: true }, http.otlp, () => {}), (e: Error & { hint?: string; code?: string }) => {
        assert.match(e.message, /the port is in use/);
        assert.match(e.hint ?? '', /--otlp-grpc HOST:PORT or --otlp-grpc off/);
        assert.equal(e.code, undefined, 'not mistaken for the HTTP listener\'s EADDRINUSE');
        return true;
      });
      const said2: string[] = [];
      assert.equal(await startOtlpGrpcFor(undefined, http.otlp, (s) => said2.push(s)), undefined);
      assert.match(said2.join(''), /OTLP\/gRPC receiver: off/);
      // a free port: it listens and says where
      const said3: string[] = [];
      const grpc = await startOtlpGrpcFor({ host: '127.0.0.1', port: 0, explicit: true }, http.otlp, (s) => said3.push(s));
      assert.ok(grpc);
      assert.match(said3.join(''), new RegExp(`OTLP/gRPC receiver: ${grpc.address.replace(/\./g, '\\.')} `));
      await grpc.close();
    } finally {
      holder.close();
      await http.close();
      await store.shutdown();
    }
  });
});
