// The Go binary analysis (src/agent/golang) against independent truth, for every Go toolchain
// on the machine (Go 1.26 and Debian's Go 1.19), on a real HTTPS program built plain,
// without DWARF (-w) and stripped (-s -w):
// - probe offsets against the toolchain's own disassembler (`go tool objdump`), its symbol
//   lister (`go tool nm`) and the program headers as readelf prints them;
// - struct offsets against the program itself (reflect, which knows unexported fields), and
//   runtime.g.goid against a scan of the running goroutine's g for its id.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdtempSync, openSync, readSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { analyzeGoBinary, goAnalysisCounters, isSupported, type GoBinaryInfo } from '../src/agent/golang/index.js';
import { nativeAddon } from '../src/kernel/native.js';
import { buildGo, goToolchains, type GoToolchain } from './go-build.js';

const SOURCE = resolve('test/fixtures/gotls');
const dir = mkdtempSync(join(tmpdir(), 'osprey-gotls-'));

interface Insn {
  addr: number;
  hex: string;
  text: string;
}

/** `go tool objdump` of one function: address, encoding and Go-syntax text of each instruction */
function objdump(go: GoToolchain, bin: string, symbol: string): Insn[] {
  const re = '^' + symbol.replace(/[()*.]/g, (c) => '\\' + c) + '$';
  const out = execFileSync(go.bin, ['tool', 'objdump', '-s', re, bin], { encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, GOTOOLCHAIN: 'local' } });
  const insns: Insn[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s+\S+:\d+\s+0x([0-9a-f]+)\s+([0-9a-f]+)\s+(.*?)\s*$/.exec(line);
    if (m) insns.push({ addr: parseInt(m[1]!, 16), hex: m[2]!, text: m[3]! });
  }
  assert.ok(insns.length > 50, `objdump listed ${insns.length} instructions of ${symbol}`);
  return insns;
}

/** address and size of a symbol by `go tool nm -size` */
function nmSymbol(go: GoToolchain, bin: string, symbol: string): { addr: number; size: number } {
  const out = execFileSync(go.bin, ['tool', 'nm', '-size', bin], { encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, GOTOOLCHAIN: 'local' } });
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[3] === symbol && f[2] === 'T') return { addr: parseInt(f[0]!, 16), size: Number(f[1]) };
  }
  throw new Error(`go tool nm: no text symbol ${symbol}`);
}

/** virtual address -> file offset through the LOAD program headers as readelf prints them */
function readelfMapper(bin: string): (addr: number) => number {
  const out = execFileSync('readelf', ['-lW', bin], { encoding: 'utf8' });
  const loads = [...out.matchAll(/^\s+LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)/gm)].map((m) => ({
    offset: parseInt(m[1]!, 16),
    vaddr: parseInt(m[2]!, 16),
    filesz: parseInt(m[3]!, 16),
  }));
  assert.ok(loads.length >= 2, 'readelf shows the LOAD segments');
  return (addr) => {
    const seg = loads.find((l) => addr >= l.vaddr && addr < l.vaddr + l.filesz);
    assert.ok(seg, `0x${addr.toString(16)} is in a LOAD segment`);
    return addr - seg.vaddr + seg.offset;
  };
}

function bytesAt(bin: string, offset: number, len: number): string {
  const fd = openSync(bin, 'r');
  try {
    const b = Buffer.alloc(len);
    readSync(fd, b, 0, len, offset);
    return b.toString('hex');
  } finally {
    closeSync(fd);
  }
}

/** checks one function against the oracles; returns how many 0xC3 bytes it holds */
function checkFunction(go: GoToolchain, bin: string, info: GoBinaryInfo, which: 'write' | 'read'): number {
  const fn = info[which];
  const toOffset = readelfMapper(bin);
  const sym = nmSymbol(go, bin, fn.symbol);
  assert.deepEqual({ addr: fn.address, size: fn.size }, sym, `${fn.symbol}: address and size as go tool nm lists them`);
  const insns = objdump(go, bin, fn.symbol);
  assert.equal(insns[0]!.addr, fn.address);
  assert.equal(fn.entry, toOffset(insns[0]!.addr), 'entry offset through the program headers');
  // every instruction objdump decodes is, byte for byte, at the offset the mapping gives
  for (const i of insns) assert.equal(bytesAt(bin, toOffset(i.addr), i.hex.length / 2), i.hex, `bytes of ${i.text} at 0x${i.addr.toString(16)}`);
  const rets = insns.filter((i) => /^RET\b/.test(i.text)).map((i) => toOffset(i.addr));
  assert.ok(rets.length >= 2, `${fn.symbol} has several returns`);
  assert.deepEqual(fn.rets, rets, `${fn.symbol}: every RET objdump shows, and nothing else`);
  const body = insns.findIndex((i, k) => k < 5 && /^JBE\b|^JLS\b/.test(i.text));
  assert.ok(body > 0, 'objdump shows the stack check jump');
  assert.equal(fn.body, toOffset(insns[body + 1]!.addr), 'body = the instruction after the stack check');
  return (bytesAt(bin, fn.entry, fn.size).match(/(..)/g) ?? []).filter((b) => b === 'c3').length;
}

interface ReflectTruth {
  version: string;
  'tls.Conn.conn': number;
  'net.TCPConn.conn': number;
  'net.conn.fd': number;
  'net.netFD.pfd': number;
  'internal/poll.FD.Sysfd': number;
  'runtime.g.goid': number[];
  fields: Record<string, Record<string, number>>;
}

function reflectTruth(bin: string): ReflectTruth {
  return JSON.parse(execFileSync(bin, ['offsets'], { encoding: 'utf8', timeout: 30_000 })) as ReflectTruth;
}

describe('Go binary analysis against oracles', { timeout: 900_000 }, () => {
  const toolchains = goToolchains();
  it('both Go toolchains are installed (Go on PATH and Debian golang-go 1.19)', () => {
    assert.ok(toolchains.some((t) => t.version.startsWith('go1.19')), `toolchains: ${toolchains.map((t) => t.version).join(', ')}`);
    assert.ok(toolchains.some((t) => !t.version.startsWith('go1.19')), `toolchains: ${toolchains.map((t) => t.version).join(', ')}`);
  });

  for (const go of toolchains) {
    describe(go.version, () => {
      it('finds Write/Read, their stack checks and every RET as the toolchain disassembles them', () => {
        const bin = buildGo(SOURCE, go);
        const info = analyzeGoBinary(bin);
        assert.ok(isSupported(info), JSON.stringify(info));
        assert.equal(info.goVersion, go.version);
        assert.equal(info.abi, 'register');
        assert.equal(info.pie, false);
        const c3 = checkFunction(go, bin, info, 'write') + checkFunction(go, bin, info, 'read');
        // the case exact decoding exists for: these functions hold 0xC3 bytes inside other
        // instructions (displacements, immediates), which a byte scan would take for RETs
        assert.ok(c3 > info.write.rets.length + info.read.rets.length, `${c3} 0xC3 bytes, ${info.write.rets.length + info.read.rets.length} RETs`);
      });

      it('reads the *tls.Conn -> fd path and g.goid offsets the program itself reports', () => {
        const bin = buildGo(SOURCE, go);
        const info = analyzeGoBinary(bin);
        assert.ok(isSupported(info), JSON.stringify(info));
        const truth = reflectTruth(bin);
        assert.equal(truth.version, go.version);
        assert.deepEqual(truth['runtime.g.goid'].length, 1, `one word of g holds the goroutine id: ${JSON.stringify(truth['runtime.g.goid'])}`);
        assert.deepEqual(info.offsets, {
          tlsConnConn: truth['tls.Conn.conn'],
          // an interface value is {itab, data}: a language fact, checked against DWARF's runtime.iface
          ifaceTab: 0,
          ifaceData: 8,
          tcpConnConn: truth['net.TCPConn.conn'],
          connFd: truth['net.conn.fd'],
          netFDPfd: truth['net.netFD.pfd'],
          pollFDSysfd: truth['internal/poll.FD.Sysfd'],
          gGoid: truth['runtime.g.goid'][0],
        });
        // the DWARF reader as a whole: every member of the structs, at reflect's offsets
        const dwarf = nativeAddon().dwarfStructs(bin, Object.keys(truth.fields));
        assert.ok(dwarf);
        for (const [struct, fields] of Object.entries(truth.fields)) {
          const got: Record<string, number> = {};
          for (const m of dwarf[struct]!.members) got[m.name] = m.offset;
          assert.deepEqual(got, fields, struct);
        }
      });

      it('without DWARF (-w): unsupported, the reason named and counted', () => {
        const bin = buildGo(SOURCE, go, { ldflags: '-w' });
        const before = goAnalysisCounters().unsupported['no-dwarf'] ?? 0;
        const info = analyzeGoBinary(bin);
        assert.ok(!isSupported(info));
        assert.equal(info.unsupported, 'no-dwarf', info.message);
        assert.equal(info.goVersion, go.version);
        assert.equal(goAnalysisCounters().unsupported['no-dwarf'], before + 1);
      });

      it('stripped (-s -w): unsupported, named in pclntab but never guessed, counted', () => {
        const bin = buildGo(SOURCE, go, { ldflags: '-s -w' });
        // the program still knows its layout at run time; the file does not carry it
        assert.equal(reflectTruth(bin).version, go.version);
        const before = goAnalysisCounters().unsupported.stripped ?? 0;
        const info = analyzeGoBinary(bin);
        assert.ok(!isSupported(info));
        assert.equal(info.unsupported, 'stripped', info.message);
        assert.equal(info.goVersion, go.version);
        assert.match(info.message, /pclntab names crypto\/tls\.\(\*Conn\)\.Write/);
        assert.equal(goAnalysisCounters().unsupported.stripped, before + 1);
      });
    });
  }

  it('caches per (dev, inode, size, mtime): same file once, a copy or a touched file again', () => {
    const go = toolchains[0]!;
    const bin = buildGo(SOURCE, go);
    const copy = join(dir, 'copy');
    copyFileSync(bin, copy);
    const first = analyzeGoBinary(copy);
    const c0 = goAnalysisCounters();
    assert.equal(analyzeGoBinary(copy), first, 'cached answer');
    const c1 = goAnalysisCounters();
    assert.equal(c1.cacheHits, c0.cacheHits + 1);
    assert.equal(c1.analyses, c0.analyses);
    utimesSync(copy, new Date(), new Date(Date.now() + 5000));
    const again = analyzeGoBinary(copy);
    assert.notEqual(again, first, 'a changed mtime is a new file');
    assert.deepEqual({ ...again, key: undefined }, { ...first, key: undefined });
    assert.equal(goAnalysisCounters().analyses, c1.analyses + 1);
  });

  it('bad input: a clear reason, never a throw', () => {
    const go = toolchains[0]!;
    const bin = buildGo(SOURCE, go);
    const truncated = join(dir, 'truncated');
    const fd = openSync(bin, 'r');
    const head = Buffer.alloc(4096);
    readSync(fd, head, 0, head.length, 0);
    closeSync(fd);
    writeFileSync(truncated, head);
    const text = join(dir, 'text');
    writeFileSync(text, 'not a program\n');
    const cases: [string, string][] = [
      ['/usr/bin/ls', 'not-go'],
      [text, 'not-elf'],
      [join(dir, 'missing'), 'unreadable'],
      [truncated, 'bad-elf'],
    ];
    for (const [path, reason] of cases) {
      const r = analyzeGoBinary(path);
      assert.ok(!isSupported(r), path);
      assert.equal(r.unsupported, reason, r.message);
      assert.ok(r.message.includes(path), r.message);
    }
  });
});
