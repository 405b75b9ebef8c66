// The connection keys and address strings the decoder gives: the linker pairs a client's
// request with a server's when one end's connKey is the other's peerKey, so equal keys must
// mean the same two ends, and every difference that makes two connections (an address, a
// port, a namespace when on loopback) must make two keys.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AF_INET, AF_INET6, EVENT_HEADER_SIZE, EVENT_LAYOUT as L, Op } from './abi.js';
import { decodeBatch, formatIp, type KernelEvent } from './decode.js';

interface End {
  ip: string;
  port: number;
}

/** 16 address bytes as the kernel writes them: IPv4 in the first 4, IPv6 (v4-mapped when asked) in all 16 */
function addrBytes(family: number, ip: string, mapped: boolean): Buffer {
  const b = Buffer.alloc(16);
  if (ip.includes('.')) {
    const v4 = ip.split('.').map(Number);
    if (family === AF_INET) b.set(v4, 0);
    else {
      assert.ok(mapped, 'an IPv4 address on an IPv6 socket is v4-mapped');
      b[10] = 0xff;
      b[11] = 0xff;
      b.set(v4, 12);
    }
    return b;
  }
  // IPv6 without "::" shortening, except a leading or lone one ("::1")
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const hw = head === '' ? [] : head.split(':');
  const tw = tail === undefined || tail === '' ? [] : tail.split(':');
  const words = [...hw, ...new Array<string>(8 - hw.length - tw.length).fill('0'), ...tw].map((w) => parseInt(w, 16));
  words.forEach((w, i) => b.writeUInt16BE(w, i * 2));
  return b;
}

/** one 'send' event of a socket with these ends, decoded */
function keysOf(family: number, local: End, remote: End, netns: number, mapped = false): { connKey: string; peerKey: string; localIp: string; remoteIp: string } {
  const buf = Buffer.alloc(EVENT_HEADER_SIZE);
  buf[L.op[0]] = Op.send;
  buf.writeUInt16LE(EVENT_HEADER_SIZE, L.size[0]);
  buf.writeUInt32LE(0, L.cap[0]);
  buf[L.family[0]] = family;
  buf.writeUInt16LE(local.port, L.lport[0]);
  buf.writeUInt16LE(remote.port, L.rport[0]);
  buf.writeUInt32LE(netns, L.netns[0]);
  addrBytes(family, local.ip, mapped).copy(buf, L.laddr[0]);
  addrBytes(family, remote.ip, mapped).copy(buf, L.raddr[0]);
  let out: { connKey: string; peerKey: string; localIp: string; remoteIp: string } | undefined;
  decodeBatch(buf, 0n, (e: KernelEvent) => (out = { connKey: e.connKey, peerKey: e.peerKey, localIp: e.localIp, remoteIp: e.remoteIp }), { records: 0, malformed: 0, unknownOp: 0 });
  assert.ok(out, 'the event decodes');
  return out;
}

const client = { ip: '10.1.2.3', port: 51000 };
const server = { ip: '10.9.8.7', port: 8080 };

describe('decode: connection keys', () => {
  it("a client's connKey is its server's peerKey, and the other way round", () => {
    const c = keysOf(AF_INET, client, server, 4026531840);
    const s = keysOf(AF_INET, server, client, 4026532000);
    assert.equal(c.connKey, s.peerKey);
    assert.equal(s.connKey, c.peerKey);
    assert.notEqual(c.connKey, c.peerKey);
  });

  it("a dual-stack server's v4-mapped socket pairs with its IPv4 client; its address strings are plain IPv4", () => {
    const c = keysOf(AF_INET, client, server, 1);
    const s = keysOf(AF_INET6, server, client, 1, true);
    assert.equal(s.peerKey, c.connKey);
    assert.equal(s.localIp, '10.9.8.7');
    assert.equal(s.remoteIp, '10.1.2.3');
  });

  it('loopback: the same ends in two network namespaces are two connections; in one, they pair', () => {
    const lc = { ip: '127.0.0.1', port: 40000 };
    const ls = { ip: '127.0.0.1', port: 80 };
    const a = keysOf(AF_INET, lc, ls, 4026531840);
    const b = keysOf(AF_INET, ls, lc, 4026531840);
    const other = keysOf(AF_INET, ls, lc, 4026532999);
    assert.equal(a.connKey, b.peerKey);
    assert.notEqual(a.connKey, other.peerKey);
    // IPv6 loopback too
    const a6 = keysOf(AF_INET6, { ip: '::1', port: 40000 }, { ip: '::1', port: 80 }, 7);
    const b6 = keysOf(AF_INET6, { ip: '::1', port: 80 }, { ip: '::1', port: 40000 }, 7);
    const o6 = keysOf(AF_INET6, { ip: '::1', port: 80 }, { ip: '::1', port: 40000 }, 8);
    assert.equal(a6.connKey, b6.peerKey);
    assert.notEqual(a6.connKey, o6.peerKey);
    assert.equal(a6.localIp, '::1');
  });

  it('off loopback the namespace is not part of the key (the two ends of a pod-to-pod call are in two)', () => {
    assert.equal(keysOf(AF_INET, client, server, 1).connKey, keysOf(AF_INET, client, server, 2).connKey);
  });

  it('every address word and port makes a different key, IPv4 and IPv6', () => {
    const base6 = { ip: 'fd00:1:2:3:4:5:6:7', port: 443 };
    const peer6 = { ip: 'fd00::9', port: 50000 };
    const keys = new Set<string>();
    const variants: [number, End, End][] = [
      [AF_INET, client, server],
      [AF_INET, { ...client, port: client.port + 1 }, server],
      [AF_INET, client, { ...server, port: server.port + 1 }],
      [AF_INET, { ...client, ip: '10.1.2.4' }, server],
      [AF_INET, client, { ...server, ip: '11.9.8.7' }],
      [AF_INET, server, client],
      [AF_INET6, base6, peer6],
      [AF_INET6, peer6, base6],
      [AF_INET6, { ...base6, port: 444 }, peer6],
    ];
    for (let w = 0; w < 8; w++) {
      const b = addrBytes(AF_INET6, base6.ip, false);
      b.writeUInt16BE(b.readUInt16BE(w * 2) ^ 0x100, w * 2);
      variants.push([AF_INET6, { ip: formatIp(AF_INET6, b), port: 443 }, peer6]);
    }
    for (const [f, l, r] of variants) keys.add(keysOf(f, l, r, 1).connKey);
    assert.equal(keys.size, variants.length);
  });
});
