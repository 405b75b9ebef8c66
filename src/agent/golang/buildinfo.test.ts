// The build-info reader on hand-made sections: the pointer layout of Go 1.13-1.17 (real
// binaries of the inline layout are read in test/go-tls-analysis.test.ts) and bad input.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { goRelease, goVersionFromBuildInfo } from './buildinfo.js';

function header(flags: number): Buffer {
  const b = Buffer.alloc(32);
  b.write('\xff Go buildinf:', 0, 'latin1');
  b[14] = 8;
  b[15] = flags;
  return b;
}

describe('go build info', () => {
  it('inline version (Go >= 1.18)', () => {
    const v = Buffer.from('go1.21.3');
    const s = Buffer.concat([header(2), Buffer.from([v.length]), v, Buffer.from([0])]);
    assert.equal(goVersionFromBuildInfo(s, () => assert.fail('no pointer to follow')), 'go1.21.3');
  });

  it('pointer layout (Go 1.13-1.17): section -> string header -> bytes', () => {
    const s = header(0);
    s.writeBigUInt64LE(0x500000n, 16);
    const mem = new Map<number, Buffer>();
    const strHeader = Buffer.alloc(16);
    strHeader.writeBigUInt64LE(0x600000n, 0);
    strHeader.writeBigUInt64LE(8n, 8);
    mem.set(0x500000, strHeader);
    mem.set(0x600000, Buffer.from('go1.16.2'));
    assert.equal(goVersionFromBuildInfo(s, (a, len) => mem.get(a)?.subarray(0, len)), 'go1.16.2');
    assert.equal(goVersionFromBuildInfo(s, () => undefined), undefined, 'unmapped pointer');
  });

  it('bad sections give undefined', () => {
    assert.equal(goVersionFromBuildInfo(Buffer.alloc(8), () => undefined), undefined);
    assert.equal(goVersionFromBuildInfo(Buffer.alloc(64), () => undefined), undefined, 'no magic');
    const overlong = Buffer.concat([header(2), Buffer.from([0x7f]), Buffer.from('go1')]);
    assert.equal(goVersionFromBuildInfo(overlong, () => undefined), undefined, 'length past the end');
  });

  it('releases', () => {
    assert.deepEqual(goRelease('go1.19.8'), [1, 19]);
    assert.deepEqual(goRelease('go1.21rc2'), [1, 21]);
    assert.deepEqual(goRelease('devel go1.27-abcdef Tue'), [1, 27]);
    assert.equal(goRelease('weird'), undefined);
  });
});
