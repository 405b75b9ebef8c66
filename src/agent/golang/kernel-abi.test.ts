// struct osp_go_tls (bpf/abi/gotls.h) against its TS mirror, through the compiled object's BTF.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { GO_TLS_BINS, GO_TLS_LAYOUT, GO_TLS_SIZE, GO_TLS_MAP } from './kernel-abi.js';

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
}

const obj = fileURLToPath(new URL('../../../../bpf/.output/capture.bpf.o', import.meta.url));
const types = (JSON.parse(execFileSync('bpftool', ['btf', 'dump', 'file', obj, 'format', 'raw', '-j'], { encoding: 'utf8' })) as { types: BtfType[] }).types;
const byId = new Map(types.map((t) => [t.id, t]));

function sizeOf(id: number): number {
  const t = byId.get(id);
  assert.ok(t, `btf type ${id}`);
  if (t.kind === 'TYPEDEF' || t.kind === 'CONST' || t.kind === 'VOLATILE') return sizeOf(t.type_id!);
  if (t.kind === 'ARRAY') return sizeOf(t.type_id!) * t.nr_elems!;
  return t.size!;
}

describe('Go TLS kernel ABI (bpf/abi/gotls.h vs kernel-abi.ts)', () => {
  it('struct osp_go_tls: size and every field', () => {
    const s = types.find((t) => t.kind === 'STRUCT' && t.name === 'osp_go_tls');
    assert.ok(s?.members, 'struct osp_go_tls in BTF');
    assert.equal(s.size, GO_TLS_SIZE);
    const fromBtf = Object.fromEntries(s.members.map((m) => [m.name, [m.bits_offset / 8, sizeOf(m.type_id)]]));
    assert.deepEqual(fromBtf, GO_TLS_LAYOUT);
  });

  it(`the ${GO_TLS_MAP} map holds ${GO_TLS_BINS} slots`, () => {
    const map = types.find((t) => t.kind === 'VAR' && t.name === GO_TLS_MAP);
    assert.ok(map, `${GO_TLS_MAP} in BTF`);
    // the map's max_entries is an array dimension in its BTF struct
    const def = byId.get(map.type_id!)!;
    const maxEntries = def.members!.find((m) => m.name === 'max_entries')!;
    const ptr = byId.get(maxEntries.type_id)!;
    assert.equal(byId.get(ptr.type_id!)!.nr_elems, GO_TLS_BINS);
  });
});
