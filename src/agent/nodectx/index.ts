// Node runtime context (bpf/lib/nodectx.h): uprobes on node's callback scopes and on the
// creation of its native async resources, so that a call of the event loop says which incoming
// request's JS made it (osp_event.rtx; the linker's `runtime` rule).
//
// Files: executables and libnode.so* that define node::InternalCallbackScope's two
// constructors, node::AsyncWrap::AsyncReset and node::AsyncHooks::push_async_context (official
// builds keep them in .symtab or export them for addons). The probes read a few fields of
// node's C++ objects; their offsets are taken from the file's own machine code, from the
// instructions of those functions that use them (x86-64), and a file whose code does not show
// them all is left alone with the reason (`osprey status`), never probed with a guess.
import { closeSync, openSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { elfSymbols, NODE_BINS, NODE_BINS_MAP, NODE_BIN_LAYOUT, NODE_BIN_SIZE, type ElfFunction } from '../../kernel/index.js';
import type { MappedFile, NoProbes, ProbeFamily, ProbeSpec } from '../tls/probe-family.js';

const SYM = {
  scopeWrap: '_ZN4node21InternalCallbackScopeC2EPNS_9AsyncWrapEi',
  scopeEnv: '_ZN4node21InternalCallbackScopeC2EPNS_11EnvironmentEN2v85LocalINS3_6ObjectEEERKNS_13async_contextEi',
  asyncReset: '_ZN4node9AsyncWrap10AsyncResetEN2v85LocalINS1_6ObjectEEEdb',
  pushContext: '_ZN4node10AsyncHooks18push_async_contextEddN2v85LocalINS1_6ObjectEEE',
} as const;
/** the complete-object constructors, where a build emits them instead of (or beside) the base ones */
const SYM_C1 = { scopeWrap: SYM.scopeWrap.replace('C2E', 'C1E'), scopeEnv: SYM.scopeEnv.replace('C2E', 'C1E') };

export interface NodeBinOffsets {
  wrapRealm: number;
  realmEnv: number;
  wrapAsyncId: number;
  envDepth: number;
  envHooks: number;
  hooksIds: number;
}

/** a byte pattern with one displacement: `null` marks where it is (d8: 1 byte, d32: 4 bytes) */
type Pattern = readonly (number | 'd8' | 'd32')[];

/** the displacement of the first match of `p` in `code`, or undefined */
export function findDisp(code: Buffer, p: Pattern): number | undefined {
  const len = p.reduce<number>((n, x) => n + (x === 'd32' ? 4 : 1), 0);
  outer: for (let i = 0; i + len <= code.length; i++) {
    let j = i;
    let disp: number | undefined;
    for (const x of p) {
      if (x === 'd8') disp = code[j++]!;
      else if (x === 'd32') {
        disp = code.readInt32LE(j);
        j += 4;
      } else if (code[j++] !== x) continue outer;
    }
    return disp;
  }
  return undefined;
}

// The instructions (x86-64, as GCC emits them for node 20) that carry each offset:
/** addq $1, disp32(%rsi): Environment::PushAsyncCallbackScope() on the env argument */
const P_DEPTH: Pattern = [0x48, 0x83, 0x86, 'd32', 0x01];
/** mov disp8(%rsi),%rax: the AsyncWrap's realm_ (BaseObject) */
const P_REALM: Pattern = [0x48, 0x8b, 0x46, 'd8'];
/** movsd disp8(%rsi),%xmm2: the AsyncWrap's async_id_ */
const P_WRAP_ID: Pattern = [0xf2, 0x0f, 0x10, 0x56, 'd8'];
/** mov disp32(%rax),%r13: the realm's env_ */
const P_REALM_ENV: Pattern = [0x4c, 0x8b, 0xa8, 'd32'];
/** lea disp32(%r13),%rdi: &env->async_hooks_, the `this` of push_async_context */
const P_HOOKS: Pattern = [0x49, 0x8d, 0xbd, 'd32'];
/** mov disp32(%rbx),%rcx; movsd (%rcx),%xmm2: async_id_fields_ read for the ids stack */
const P_IDS: Pattern = [0x48, 0x8b, 0x8b, 'd32', 0xf2, 0x0f, 0x10, 0x11];
/** movsd disp8(%rdi),%xmm0: AsyncReset reads this->async_id_ (a cross-check of P_WRAP_ID) */
const P_RESET_ID: Pattern = [0xf2, 0x0f, 0x10, 0x47, 'd8'];

function readCode(fd: number, fn: ElfFunction): Buffer {
  const n = Math.min(fn.size || 1024, 4096);
  const b = Buffer.alloc(n);
  const got = readSync(fd, b, 0, n, fn.offset);
  return b.subarray(0, got);
}

/** the offsets from the file's code, or why they cannot be had */
export function nodeOffsets(path: string, f: Map<string, ElfFunction>): NodeBinOffsets | string {
  const wrap = f.get(SYM.scopeWrap) ?? f.get(SYM_C1.scopeWrap);
  const env = f.get(SYM.scopeEnv) ?? f.get(SYM_C1.scopeEnv);
  const reset = f.get(SYM.asyncReset);
  const push = f.get(SYM.pushContext);
  if (!wrap || !env || !reset || !push) return 'node symbols missing (InternalCallbackScope, AsyncReset, push_async_context)';
  if (process.arch !== 'x64') return `runtime context needs x86-64 code (this is ${process.arch})`;
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    return `cannot read: ${(e as Error).message}`;
  }
  try {
    const wc = readCode(fd, wrap);
    const o = {
      envDepth: findDisp(readCode(fd, env), P_DEPTH),
      wrapRealm: findDisp(wc, P_REALM),
      wrapAsyncId: findDisp(wc, P_WRAP_ID),
      realmEnv: findDisp(wc, P_REALM_ENV),
      envHooks: findDisp(wc, P_HOOKS),
      hooksIds: findDisp(readCode(fd, push), P_IDS),
    };
    const missing = Object.entries(o)
      .filter(([, v]) => v === undefined || v < 0 || v > 0xffff)
      .map(([k]) => k);
    if (missing.length) return `unknown node build: its code does not show ${missing.join(', ')}`;
    const resetId = findDisp(readCode(fd, reset), P_RESET_ID);
    if (resetId !== o.wrapAsyncId) return `unknown node build: AsyncReset reads async_id_ at ${resetId}, the scope at ${o.wrapAsyncId}`;
    return o as NodeBinOffsets;
  } finally {
    closeSync(fd);
  }
}

export function encodeNodeBin(o: NodeBinOffsets): Buffer {
  const b = Buffer.alloc(NODE_BIN_SIZE);
  const L = NODE_BIN_LAYOUT;
  b.writeUInt32LE(o.wrapRealm, L.wrap_realm[0]);
  b.writeUInt32LE(o.realmEnv, L.realm_env[0]);
  b.writeUInt32LE(o.wrapAsyncId, L.wrap_async_id[0]);
  b.writeUInt32LE(o.envDepth, L.env_depth[0]);
  b.writeUInt32LE(o.envHooks, L.env_hooks[0]);
  b.writeUInt32LE(o.hooksIds, L.hooks_ids[0]);
  return b;
}

/** what the family needs of the capture: writing a node_bins slot */
export interface NodeCtxKernel {
  mapUpdate(map: string, key: Buffer, value: Buffer): void;
}

export interface NodeCtxFamily extends ProbeFamily {
  readonly counters: { slotsInUse: number; slotsFull: number };
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

/** the uprobe family of Node's runtime context (one node_bins slot per probed file) */
export function nodeCtxFamily(kernel: NodeCtxKernel, maxFiles = NODE_BINS): NodeCtxFamily {
  const free = Array.from({ length: Math.min(maxFiles, NODE_BINS) }, (_, i) => i).reverse();
  const counters = { slotsInUse: 0, slotsFull: 0 };
  return {
    name: 'node-context',
    counters,
    candidate: (file: MappedFile) => file.exe || basename(file.path).startsWith('libnode.so'),
    plan(file: MappedFile): ProbeSpec[] | NoProbes {
      const names = [...Object.values(SYM), ...Object.values(SYM_C1)];
      const syms = elfSymbols(file.openPath, names);
      if (syms.error) return { reason: syms.error, level: file.exe ? 'none' : 'error' };
      const f = syms.functions;
      if (!f.has(SYM.asyncReset)) {
        if (!file.exe) return { reason: 'libnode without node::AsyncWrap::AsyncReset', level: 'error' };
        if (!syms.symtab && !syms.dynsym) return { reason: 'stripped: no symbol table', level: 'stripped' };
        return { reason: 'not node', level: 'none' };
      }
      const o = nodeOffsets(file.openPath, f);
      if (typeof o === 'string') return { reason: o, level: 'error' };
      const slot = free.pop();
      if (slot === undefined) {
        counters.slotsFull++;
        return { reason: `${NODE_BINS} node files have probes already (the bound of node_bins)`, level: 'error', full: true };
      }
      // the slot is written before any probe that reads it is attached
      kernel.mapUpdate(NODE_BINS_MAP, u32(slot), encodeNodeBin(o));
      counters.slotsInUse++;
      const cookie = slot + 1;
      const at = (s: string, c1?: string): number => (f.get(s) ?? f.get(c1 ?? s))!.offset;
      return [
        { program: 'osp_node_scope_wrap', offset: at(SYM.scopeWrap, SYM_C1.scopeWrap), retprobe: false, label: 'InternalCallbackScope(AsyncWrap*)', cookie },
        { program: 'osp_node_scope_env', offset: at(SYM.scopeEnv, SYM_C1.scopeEnv), retprobe: false, label: 'InternalCallbackScope(Environment*)', cookie },
        { program: 'osp_node_reset', offset: at(SYM.asyncReset), retprobe: false, label: 'AsyncWrap::AsyncReset', cookie },
        { program: 'osp_node_reset_ret', offset: at(SYM.asyncReset), retprobe: true, label: 'AsyncWrap::AsyncReset return', cookie },
      ];
    },
    released(plan: readonly ProbeSpec[]): void {
      const cookie = plan[0]?.cookie;
      if (!cookie) return;
      free.push(cookie - 1);
      counters.slotsInUse--;
    },
  };
}
