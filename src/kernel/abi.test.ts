// C and TS never drift: the layout table in abi.ts is checked against the BTF
// of the compiled object (sizes and offsets of every field, enum values).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { GO_CTX_BINS, GO_CTX_COUNTERS, GO_CTX_LAYOUT, GO_CTX_MAP, GO_CTX_SIZE, GO_GKEY_SIZE, GO_PARENT_SIZE, GO_PROC_LAYOUT, GO_PROC_SIZE } from './abi-goctx.js';
import { GO_TLS_BINS, GO_TLS_LAYOUT, GO_TLS_MAP, GO_TLS_SIZE } from './abi-gotls.js';
import { RT_PROCS, RT_PROCS_MAP, RtBit } from './abi-rtctx.js';
import { EVENT_HEADER_SIZE, EVENT_LAYOUT, EXCHANGE_LAYOUT, EXCHANGE_SIZE, KERNEL_COUNTERS, LinkNote, Op, Flag, Role, SummarizeMode } from './abi.js';

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
  values?: { name: string; val: number }[];
}

const obj = fileURLToPath(new URL('../../../bpf/.output/capture.bpf.o', import.meta.url));
const types = (JSON.parse(execFileSync('bpftool', ['btf', 'dump', 'file', obj, 'format', 'raw', '-j'], { encoding: 'utf8' })) as {
  types: BtfType[];
}).types;
const byId = new Map(types.map((t) => [t.id, t]));

function sizeOf(id: number): number {
  const t = byId.get(id);
  assert.ok(t, `btf type ${id}`);
  switch (t.kind) {
    case 'INT':
    case 'STRUCT':
    case 'UNION':
    case 'ENUM':
      return t.size!;
    case 'ARRAY':
      return sizeOf(t.type_id!) * t.nr_elems!;
    case 'TYPEDEF':
    case 'CONST':
    case 'VOLATILE':
      return sizeOf(t.type_id!);
    default:
      throw new Error(`unexpected btf kind ${t.kind}`);
  }
}

function enumValues(name: string): Map<string, number> {
  const t = types.find((x) => x.kind === 'ENUM' && x.name === name);
  assert.ok(t, `enum ${name} in BTF`);
  return new Map(t.values!.map((v) => [v.name, v.val]));
}

describe('ABI layout (bpf/abi/events.h vs src/kernel/abi.ts)', () => {
  it('struct osp_event: size and every field offset and size', () => {
    const s = types.find((t) => t.kind === 'STRUCT' && t.name === 'osp_event');
    assert.ok(s?.members, 'struct osp_event in BTF');
    assert.equal(s.size, EVENT_HEADER_SIZE);
    const fromBtf = Object.fromEntries(s.members.map((m) => [m.name, [m.bits_offset / 8, sizeOf(m.type_id)]]));
    assert.deepEqual(fromBtf, EVENT_LAYOUT);
  });

  it('struct osp_exchange (an exchange record\'s payload): size and every field', () => {
    const s = types.find((t) => t.kind === 'STRUCT' && t.name === 'osp_exchange');
    assert.ok(s?.members, 'struct osp_exchange in BTF');
    assert.equal(s.size, EXCHANGE_SIZE);
    const fromBtf = Object.fromEntries(s.members.map((m) => [m.name, [m.bits_offset / 8, sizeOf(m.type_id)]]));
    assert.deepEqual(fromBtf, EXCHANGE_LAYOUT);
  });

  it('ops, flags, roles and counters match the C enums', () => {
    const ops = enumValues('osp_op');
    for (const [name, v] of Object.entries(Op)) assert.equal(ops.get(`OSP_OP_${name.toUpperCase()}`), v, name);
    assert.equal(ops.size, Object.keys(Op).length);
    const flags = enumValues('osp_flag');
    assert.equal(flags.get('OSP_F_TRUNCATED'), Flag.truncated);
    assert.equal(flags.get('OSP_F_IGNORED'), Flag.ignored);
    assert.equal(flags.get('OSP_F_SENDFILE'), Flag.sendfile);
    assert.equal(flags.get('OSP_F_PREEXISTING'), Flag.preexisting);
    assert.equal(flags.get('OSP_F_KERNEL_CLOSE'), Flag.kernelClose);
    assert.equal(flags.get('OSP_F_ELIDED'), Flag.elided);
    assert.equal(flags.get('OSP_F_SHADOW'), Flag.shadow);
    assert.equal(flags.get('OSP_F_REPLAY'), Flag.replay);
    assert.equal(enumValues('osp_link').get('OSP_L_UNSURE'), LinkNote.unsure);
    const modes = enumValues('hx_mode');
    assert.deepEqual([modes.get('HX_MODE_OFF'), modes.get('HX_MODE_ON'), modes.get('HX_MODE_SHADOW')], [SummarizeMode.off, SummarizeMode.on, SummarizeMode.shadow]);
    const roles = enumValues('osp_role');
    assert.equal(roles.get('OSP_ROLE_CLIENT'), Role.client);
    assert.equal(roles.get('OSP_ROLE_SERVER'), Role.server);
    const counters = enumValues('osp_counter');
    assert.equal(counters.get('OSP_C__COUNT'), KERNEL_COUNTERS.length);
  });

  it('struct osp_go_tls (bpf/abi/gotls.h vs abi-gotls.ts) and its map of GO_TLS_BINS slots', () => {
    const s = types.find((t) => t.kind === 'STRUCT' && t.name === 'osp_go_tls');
    assert.ok(s?.members, 'struct osp_go_tls in BTF');
    assert.equal(s.size, GO_TLS_SIZE);
    const fromBtf = Object.fromEntries(s.members.map((m) => [m.name, [m.bits_offset / 8, sizeOf(m.type_id)]]));
    assert.deepEqual(fromBtf, GO_TLS_LAYOUT);
    // a map's max_entries is the dimension of an array its BTF definition points to
    const map = types.find((t) => t.kind === 'VAR' && t.name === GO_TLS_MAP);
    const def = byId.get(map!.type_id!)!;
    const maxEntries = def.members!.find((m) => m.name === 'max_entries')!;
    assert.equal(byId.get(byId.get(maxEntries.type_id)!.type_id!)!.nr_elems, GO_TLS_BINS);
  });

  it('Go runtime context (bpf/abi/goctx.h vs abi-goctx.ts): bins, process entries, parents, counters', () => {
    const layout = (name: string) => {
      const s = types.find((t) => t.kind === 'STRUCT' && t.name === name);
      assert.ok(s?.members, `struct ${name} in BTF`);
      return { size: s.size, fields: Object.fromEntries(s.members.map((m) => [m.name, [m.bits_offset / 8, sizeOf(m.type_id)]])) };
    };
    assert.deepEqual(layout('osp_go_ctx'), { size: GO_CTX_SIZE, fields: GO_CTX_LAYOUT });
    assert.deepEqual(layout('osp_go_proc'), { size: GO_PROC_SIZE, fields: GO_PROC_LAYOUT });
    assert.equal(layout('go_gkey').size, GO_GKEY_SIZE);
    assert.equal(layout('go_parent').size, GO_PARENT_SIZE);
    const map = types.find((t) => t.kind === 'VAR' && t.name === GO_CTX_MAP);
    const def = byId.get(map!.type_id!)!;
    const maxEntries = def.members!.find((m) => m.name === 'max_entries')!;
    assert.equal(byId.get(byId.get(maxEntries.type_id)!.type_id!)!.nr_elems, GO_CTX_BINS);
    const e = types.find((t) => t.kind === 'ENUM' && t.name === 'osp_go_counter');
    assert.ok(e?.values);
    const names = GO_CTX_COUNTERS.map((n) => `OSP_GC_${n.toUpperCase()}`);
    assert.deepEqual(e.values.filter((v) => v.name !== 'OSP_GC__COUNT').map((v) => [v.name, v.val]), names.map((n, i) => [n, i]));
  });

  it('runtime processes (bpf/abi/rtctx.h vs abi-rtctx.ts): the bits and the map', () => {
    const bits = enumValues('osp_rt');
    assert.deepEqual(Object.fromEntries(bits), { OSP_RT_GO: RtBit.go, OSP_RT_NODE: RtBit.node });
    const map = types.find((t) => t.kind === 'VAR' && t.name === RT_PROCS_MAP);
    assert.ok(map, `map ${RT_PROCS_MAP} in BTF`);
    const def = byId.get(map.type_id!)!;
    const maxEntries = def.members!.find((m) => m.name === 'max_entries')!;
    assert.equal(byId.get(byId.get(maxEntries.type_id)!.type_id!)!.nr_elems, RT_PROCS);
  });
});
