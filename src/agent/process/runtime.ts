// How a process maps requests onto OS threads, which decides whether the thread of a call
// may say which request made it (the linker's thread rule):
//   per-request  one OS thread works on one request at a time (C/C++ thread pools, Python's
//                threading servers, classic Java servlet pools, Ruby, PHP): a call made by a
//                thread that is working on exactly one request belongs to it;
//   event-loop   one thread interleaves many requests, but a request stays on the thread that
//                read it (Node, nginx, Python asyncio/uvloop/gevent): the same holds, except
//                that a loop also runs work of no request (timers, work after a response), so
//                the linker switches the rule off for a loop thread once it calls outside any
//                request;
//   multiplexed  a request's work moves between OS threads (Go's goroutines, Rust's tokio and
//                async-std, Java virtual threads and async pools, .NET, Erlang): the thread of
//                a call says nothing about its request, and the thread rule is never used.
// Detection looks at the executable (ELF sections, the Go build info, Rust async runtimes'
// strings) and the process' mappings and thread names, once per process; runtimes whose model
// can change after start (Java starts virtual-thread carriers lazily, Python imports asyncio
// late) are looked at again. The linker also learns from behaviour: a request answered by
// another thread than the one that read it proves multiplexing, whatever was detected here.
import { closeSync, fstatSync, openSync, readFileSync, readSync, readdirSync } from 'node:fs';
import { basename } from 'node:path';

export type ThreadModel = 'per-request' | 'event-loop' | 'multiplexed';

export interface RuntimeInfo {
  /** go, rust-async, java, dotnet, erlang, node, nginx, python, native, unknown */
  runtime: string;
  model: ThreadModel;
  /** what the verdict rests on, for `osprey status` and tests */
  evidence: string;
  /** look again later: the process may still switch to a more multiplexed model */
  recheck: boolean;
}

/** ELF facts about one executable file, cached by device and inode */
interface ElfFacts {
  go: boolean;
  rustAsync: string | undefined;
}

const ELF_CACHE_MAX = 1024;
const elfCache = new Map<string, ElfFacts>();

/** Go toolchains since 1.13 write .go.buildinfo; .gopclntab and the Go build id note are older and also there */
const GO_SECTIONS = new Set(['.go.buildinfo', '.gopclntab', '.note.go.buildid']);
/**
 * Rust async runtimes leave their crate paths in .rodata (panic locations), also in stripped
 * release builds: "…/tokio-1.38.0/src/runtime/…". A crate name between "/" and "-<digit>" is
 * specific enough not to match ordinary strings.
 */
const RUST_ASYNC = ['tokio', 'async-std', 'smol', 'async-executor'].map((name) => ({ name, needle: Buffer.from(`/${name}-`) }));
/** the most of .rodata read when looking for a Rust async runtime, and the piece read at once */
const MAX_RODATA = 128 << 20;
const RODATA_PIECE = 4 << 20;

const isDigit = (c: number | undefined): boolean => c !== undefined && c >= 0x30 && c <= 0x39;

/** "<digits>.<digit>" at b[i]: a crate version */
function isVersion(b: Buffer, i: number): boolean {
  let j = i;
  while (isDigit(b[j])) j++;
  return j > i && b[j] === 0x2e && isDigit(b[j + 1]);
}

/** the first Rust async runtime whose crate path is in file[offset, offset + size), read piece by piece */
function rustAsyncIn(fd: number, offset: number, size: number): string | undefined {
  const end = offset + Math.min(size, MAX_RODATA);
  // pieces overlap by a needle and a version digit, so a path across a boundary is seen whole
  const overlap = 32;
  for (let pos = offset; pos < end; pos += RODATA_PIECE - overlap) {
    const piece = readAt(fd, pos, Math.min(RODATA_PIECE, end - pos));
    for (const { name, needle } of RUST_ASYNC) {
      for (let i = piece.indexOf(needle); i >= 0; i = piece.indexOf(needle, i + 1)) {
        if (isVersion(piece, i + needle.length)) return name;
      }
    }
    if (pos + RODATA_PIECE >= end) break;
  }
  return undefined;
}

function readAt(fd: number, pos: number, len: number): Buffer {
  const buf = Buffer.alloc(len);
  let off = 0;
  while (off < len) {
    const n = readSync(fd, buf, off, len - off, pos + off);
    if (n <= 0) break;
    off += n;
  }
  return off === len ? buf : buf.subarray(0, off);
}

interface Section {
  name: string;
  offset: number;
  size: number;
}

/** the section table of a little-endian ELF64 file, or undefined for anything else */
function elfSections(fd: number): Section[] | undefined {
  const h = readAt(fd, 0, 64);
  if (h.length < 64 || h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2 || h[5] !== 1) return undefined;
  const shoff = Number(h.readBigUInt64LE(0x28));
  const shentsize = h.readUInt16LE(0x3a);
  const shnum = h.readUInt16LE(0x3c);
  const shstrndx = h.readUInt16LE(0x3e);
  if (!shoff || shentsize < 64 || !shnum || shnum > 4096 || shstrndx >= shnum) return undefined;
  const table = readAt(fd, shoff, shnum * shentsize);
  if (table.length < shnum * shentsize) return undefined;
  const raw = [];
  for (let i = 0; i < shnum; i++) {
    const o = i * shentsize;
    raw.push({ nameOff: table.readUInt32LE(o), offset: Number(table.readBigUInt64LE(o + 0x18)), size: Number(table.readBigUInt64LE(o + 0x20)), type: table.readUInt32LE(o + 4) });
  }
  const strs = raw[shstrndx]!;
  const names = readAt(fd, strs.offset, Math.min(strs.size, 1 << 20));
  return raw.map((s) => {
    const end = names.indexOf(0, s.nameOff);
    // SHT_NOBITS (8) sections occupy no bytes in the file
    return { name: names.toString('latin1', s.nameOff, end < 0 ? names.length : end), offset: s.offset, size: s.type === 8 ? 0 : s.size };
  });
}

/** what the executable file says about its runtime (cached per file) */
export function elfFacts(path: string): ElfFacts | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    const key = `${st.dev}:${st.ino}:${st.mtimeMs}`;
    const hit = elfCache.get(key);
    if (hit) return hit;
    const sections = elfSections(fd);
    if (!sections) return undefined;
    const facts: ElfFacts = { go: sections.some((s) => GO_SECTIONS.has(s.name)), rustAsync: undefined };
    if (!facts.go) {
      const ro = sections.find((s) => s.name === '.rodata');
      if (ro && ro.size) facts.rustAsync = rustAsyncIn(fd, ro.offset, ro.size);
    }
    if (elfCache.size >= ELF_CACHE_MAX) elfCache.delete(elfCache.keys().next().value!);
    elfCache.set(key, facts);
    return facts;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return '';
  }
}

/** names of the process' threads (comm: the first 15 bytes of the thread's name) */
function threadNames(pid: number, max = 4096): string[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return tids.slice(0, max).map((t) => readText(`/proc/${pid}/task/${t}/comm`).trim());
}

/**
 * JVM thread names that mean a request's work can move between OS threads: virtual-thread
 * carriers and ForkJoin pools (CompletableFuture), Netty/reactor/Vert.x event loops (reactive
 * stacks hop between them and worker pools).
 */
const JAVA_MULTIPLEXED = /^(ForkJoinPool|VirtualThread|nioEventLoopGro|epollEventLoopG|kqueueEventLoop|reactor-http|vert\.x-eventloo|vert\.x-worker|parallel-\d|boundedElastic)/;
/** Python modules (mapped shared objects) that put many requests on one thread */
const PYTHON_LOOP = /\/(_asyncio|uvloop\/loop|_greenlet|greenlet\/_greenlet|gevent\/[\w.]+)\.cpython[^/]*\.so$/m;

const INTERPRETER = /^(python[0-9.]*|ruby[0-9.]*|perl[0-9.]*|php[0-9.\-fpm]*)$/;

/**
 * The thread model of a running process, from /proc. `exe` is the target of /proc/<pid>/exe
 * (for its name; the file itself is read through /proc, which also works once it is deleted),
 * `comm` the fallback name.
 */
export function detectRuntime(pid: number, exe: string, comm = ''): RuntimeInfo {
  const name = basename(exe).replace(/ \(deleted\)$/, '') || comm;
  const maps = readText(`/proc/${pid}/maps`);
  if (/\/libjvm\.so$/m.test(maps) || name === 'java') {
    const loops = threadNames(pid).filter((t) => JAVA_MULTIPLEXED.test(t));
    if (loops.length) return { runtime: 'java', model: 'multiplexed', evidence: `JVM threads ${[...new Set(loops.map((t) => t.replace(/[-\d]+$/, '')))].join(', ')}`, recheck: false };
    return { runtime: 'java', model: 'per-request', evidence: 'JVM without virtual-thread carriers or event-loop threads (yet)', recheck: true };
  }
  if (/\/libcoreclr\.so$/m.test(maps)) return { runtime: 'dotnet', model: 'multiplexed', evidence: 'libcoreclr.so mapped (async continuations run on any pool thread)', recheck: false };
  if (name === 'beam.smp' || /\/beam\.smp$/m.test(maps)) return { runtime: 'erlang', model: 'multiplexed', evidence: 'BEAM schedulers', recheck: false };
  if (/^(node|nodejs|bun|deno)$/.test(name) || /\/libnode\.so[.\d]*$/m.test(maps)) return { runtime: 'node', model: 'event-loop', evidence: `${name} event loop`, recheck: false };
  if (/^(nginx|openresty|envoy|haproxy)$/.test(name)) return { runtime: name, model: 'event-loop', evidence: `${name} worker event loops`, recheck: false };
  if (INTERPRETER.test(name) || /\/libpython3[.\d]*\.so/m.test(maps)) {
    const m = PYTHON_LOOP.exec(maps);
    if (m) return { runtime: 'python', model: 'event-loop', evidence: `${m[1]} loaded`, recheck: false };
    return { runtime: name.startsWith('python') ? 'python' : name, model: 'per-request', evidence: 'interpreter without an event loop module (yet)', recheck: true };
  }
  const facts = elfFacts(`/proc/${pid}/exe`);
  if (facts?.go) return { runtime: 'go', model: 'multiplexed', evidence: 'Go build info in the executable (goroutines move between threads)', recheck: false };
  if (facts?.rustAsync) return { runtime: 'rust-async', model: 'multiplexed', evidence: `${facts.rustAsync} in the executable`, recheck: false };
  if (!facts) return { runtime: 'unknown', model: 'per-request', evidence: 'executable unreadable', recheck: false };
  return { runtime: 'native', model: 'per-request', evidence: 'native executable, no known async runtime', recheck: false };
}
