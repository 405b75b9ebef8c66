// Decoder ceiling: events/s per core that src/kernel decodes from ring-buffer
// batches shaped exactly like the kernel's (112-byte header + payload prefix).
// Prints a ratio-style line; nothing is asserted.
import { decodeBatch, EVENT_LAYOUT as L, EVENT_HEADER_SIZE } from '../dist/src/kernel/index.js';

const payload = Buffer.from('GET /api/users/123 HTTP/1.1\r\nHost: backend:8080\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n');
const perBatch = 4000;
const recSize = (EVENT_HEADER_SIZE + payload.length + 7) & ~7;
const batch = Buffer.alloc(recSize * perBatch);
for (let i = 0; i < perBatch; i++) {
  const o = i * recSize;
  batch[o + L.op[0]] = 3 + (i & 1);
  batch.writeUInt16LE(EVENT_HEADER_SIZE + payload.length, o + L.size[0]);
  batch.writeUInt32LE(1000 + (i % 7), o + L.pid[0]);
  batch.writeUInt32LE(1000 + (i % 7), o + L.tid[0]);
  batch.writeBigUInt64LE(1_000_000_000n + BigInt(i) * 1000n, o + L.ts[0]);
  batch.writeBigUInt64LE(1_000_000_500n + BigInt(i) * 1000n, o + L.ts_end[0]);
  batch.writeBigUInt64LE(BigInt(i % 100), o + L.conn_id[0]);
  batch.writeBigInt64LE(BigInt(payload.length), o + L.bytes[0]);
  batch.writeUInt32LE(payload.length, o + L.cap[0]);
  batch[o + L.family[0]] = 2;
  batch.write('python3', o + L.comm[0], 'latin1');
  payload.copy(batch, o + EVENT_HEADER_SIZE);
}

const stats = { records: 0, malformed: 0, unknownOp: 0 };
let sink = 0;
const emit = (e) => (sink += e.bytes);
for (let i = 0; i < 50; i++) decodeBatch(batch, 0n, emit, stats); // warm up
const rounds = 500;
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
for (let i = 0; i < rounds; i++) decodeBatch(batch, 0n, emit, stats);
const wall = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
const cpuSec = (cpu.user + cpu.system) / 1e6;
const n = rounds * perBatch;
console.log(`decode: ${n} events in ${wall.toFixed(2)} s wall, ${cpuSec.toFixed(2)} s cpu`);
console.log(`decode: ${Math.round(n / cpuSec).toLocaleString('en-US')} events/s per core (${(cpuSec * 1e9 / n).toFixed(0)} ns/event)`);
if (sink === 0 || stats.malformed) process.exitCode = 1;
