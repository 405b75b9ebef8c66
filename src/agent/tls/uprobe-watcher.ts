// Finds the files that carry a probed library's API and keeps uprobes attached to each one
// exactly once, for every process that maps it (a uprobe lives on the file's inode, pid -1).
//
// How new processes are found: a periodic scan of /proc/<pid>/maps (default every 2 s).
// Measured here: 2.2-4.3 ms for 80 processes (~30 us each, ~100 KB of maps), so 0.1-0.2 % of
// a core at a 2 s period. The alternative, a sched:sched_process_exec event, fires before the
// dynamic loader has mapped the libraries (libssl is not in the maps yet) and not at all for
// a library loaded later by dlopen (Python imports ssl lazily): a scan would still be needed,
// so the scan is the one mechanism. Once a file is attached, every process that maps it later
// is covered at once, whatever its start; only the first process of a new file waits for the
// next scan. A file no process maps any more is detached at the scan that no longer sees it.
// A process's maps are read again only when its address space changed size or the pid is
// another process's (/proc/<pid>/stat: its start time and size, a few hundred bytes): on a machine of 150 processes a scan took 20-25 ms of CPU reading every
// maps file, ~5 ms with most of them unchanged (two watchers scan: TLS and Go runtime).
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, readSync } from 'node:fs';
import type { UprobeTarget } from '../../kernel/index.js';
import type { MappedFile, ProbeFamily, ProbeSpec } from './probe-family.js';

/** what the watcher needs of the capture (src/kernel Capture) */
export interface UprobeAttacher {
  attachUprobe(t: UprobeTarget): number;
  detachUprobe(link: number): boolean;
}

export interface UprobeWatcherOptions {
  families: readonly ProbeFamily[];
  /** period of the /proc scan, ms (default 2000) */
  scanMs?: number;
  /** most files with probes attached at once (default 64); more are counted and left out */
  maxFiles?: number;
  /** leave this process out (default: this one) */
  excludePid?: number;
  /** called with an error the scan itself hit (it carries on at the next period) */
  onError?: (err: unknown) => void;
}

export type FileStatus = 'attached' | 'none' | 'stripped' | 'error' | 'over-limit';

export interface WatchedFile {
  family: string;
  /** dev:inode as /proc/<pid>/maps gives them */
  file: string;
  path: string;
  status: FileStatus;
  reason: string | undefined;
  /** uprobes attached on it */
  probes: number;
  /** processes mapping it at the last scan */
  processes: number;
}

export interface UprobeWatcherCounters {
  scans: number;
  /** duration of the last scan, ms */
  scan_last_ms: number;
  processes_scanned: number;
  /** processes whose maps were not read again: their address space had the same size */
  maps_reused: number;
  /** processes whose maps could not be read (exited meanwhile, or not permitted) */
  maps_unreadable: number;
  /** files whose symbols were read */
  files_checked: number;
  files_attached: number;
  files_detached: number;
  /** files that should carry the API but do not, or could not be read */
  files_error: number;
  /** files without any symbol table: they may carry the API where it cannot be found */
  files_stripped: number;
  /** files left out because maxFiles were attached already */
  files_over_limit: number;
  /** uprobes that failed to attach (the file is then left without any) */
  attach_errors: number;
  /** files with probes attached now, and their probes */
  attached_now: number;
  probes_now: number;
}

/** what a process mapped at the last scan (see #scanProcess) */
interface ProcMaps {
  /** from /proc/<pid>/stat: the process's start time and its address space's size */
  vm: string;
  /** its executable file mappings, once each */
  files: { file: string; mapped: MappedFile }[];
}

const SMALL = Buffer.alloc(1024);

/** a short /proc file (one read into a shared buffer: no stat, no second read), undefined when unreadable */
function readSmall(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const n = readSync(fd, SMALL, 0, SMALL.length, null);
    return SMALL.toString('latin1', 0, n);
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

interface FileState extends WatchedFile {
  familyRef: ProbeFamily;
  openPath: string;
  exe: boolean;
  links: number[];
  /** the plan whose probes are attached (handed back to the family at release) */
  plan: ProbeSpec[] | undefined;
  seenScan: number;
  pidsNow: number;
  /** processes told to the family (processMapped), for families with per-process state */
  pids: Set<number> | undefined;
  /** the processes seen mapping it at the current scan */
  pidsSeen: Set<number> | undefined;
}

export class UprobeWatcher {
  readonly counters: UprobeWatcherCounters = {
    scans: 0,
    scan_last_ms: 0,
    processes_scanned: 0,
    maps_reused: 0,
    maps_unreadable: 0,
    files_checked: 0,
    files_attached: 0,
    files_detached: 0,
    files_error: 0,
    files_stripped: 0,
    files_over_limit: 0,
    attach_errors: 0,
    attached_now: 0,
    probes_now: 0,
  };
  readonly #cap: UprobeAttacher;
  readonly #families: readonly ProbeFamily[];
  readonly #scanMs: number;
  readonly #maxFiles: number;
  readonly #self: number;
  readonly #onError: (err: unknown) => void;
  /** by family + dev:inode: one entry per distinct file, attached or not */
  readonly #files = new Map<string, FileState>();
  /** per pid, the size of its address space and the executable files it mapped at the last scan */
  #procs = new Map<string, ProcMaps>();
  #scanNo = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(cap: UprobeAttacher, opts: UprobeWatcherOptions) {
    this.#cap = cap;
    this.#families = opts.families;
    this.#scanMs = opts.scanMs ?? 2000;
    this.#maxFiles = opts.maxFiles ?? 64;
    this.#self = opts.excludePid ?? process.pid;
    this.#onError = opts.onError ?? (() => {});
    if (!Number.isInteger(this.#maxFiles) || this.#maxFiles < 0) throw new RangeError(`maxFiles must be an integer >= 0, got ${this.#maxFiles}`);
  }

  /** scans once now (the processes running at start are covered when this returns), then periodically */
  start(): void {
    this.scan();
    this.#timer = setInterval(() => {
      try {
        this.scan();
      } catch (err) {
        this.#onError(err);
      }
    }, this.#scanMs);
    this.#timer.unref();
  }

  /** one pass over /proc: attaches to new files, detaches from files no process maps */
  scan(): void {
    if (this.#stopped) return;
    const t0 = performance.now();
    const no = ++this.#scanNo;
    let pids: string[];
    try {
      pids = readdirSync('/proc');
    } catch (err) {
      this.#onError(err);
      return;
    }
    // the processes of this scan replace those of the last one (gone pids are forgotten)
    const procs = new Map<string, ProcMaps>();
    for (const d of pids) {
      const c = d.charCodeAt(0);
      if (c < 48 || c > 57 || Number(d) === this.#self) continue;
      this.#scanProcess(d, no, procs);
    }
    this.#procs = procs;
    for (const [key, st] of this.#files) {
      st.processes = st.pidsNow;
      st.pidsNow = 0;
      this.#goneProcesses(st);
      if (st.seenScan !== no) {
        this.#release(st);
        this.#files.delete(key);
      }
    }
    // files left out at the bound get their turn once others are gone
    for (const st of this.#files.values()) {
      if (st.status === 'over-limit' && this.counters.attached_now < this.#maxFiles) this.#attach(st);
    }
    this.counters.scans++;
    this.counters.scan_last_ms = Math.round((performance.now() - t0) * 1000) / 1000;
  }

  #scanProcess(pid: string, no: number, procs: Map<string, ProcMaps>): void {
    // a process whose address space kept its size since the last scan maps the same files:
    // its maps (tens to hundreds of KB of text the kernel formats, most of a scan's cost on
    // a busy machine, both user and kernel time) are read again only when the size moved.
    // Loading a library (dlopen) always grows it. The start time tells a new process that
    // reuses the pid of one gone within a scan period from the old one, whatever its size.
    const stat = readSmall(`/proc/${pid}/stat`);
    if (stat === undefined) {
      this.counters.maps_unreadable++;
      return;
    }
    // after the command's closing parenthesis: state (field 3) ... starttime (22), vsize (23)
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ', 21);
    const vm = `${f[19]}:${f[20]}`;
    const prev = this.#procs.get(pid);
    if (prev !== undefined && prev.vm === vm) {
      procs.set(pid, prev);
      this.counters.processes_scanned++;
      this.counters.maps_reused++;
      for (const m of prev.files) this.#visit(pid, m.file, m.mapped, no);
      return;
    }
    let maps: string;
    let exe: string | undefined;
    try {
      maps = readFileSync(`/proc/${pid}/maps`, 'latin1');
    } catch {
      this.counters.maps_unreadable++;
      return;
    }
    try {
      exe = readlinkSync(`/proc/${pid}/exe`);
    } catch {
      exe = undefined; // kernel threads have none
    }
    this.counters.processes_scanned++;
    const entry: ProcMaps = { vm, files: [] };
    procs.set(pid, entry);
    let seen: Set<string> | undefined;
    // line: "addr perms offset dev inode   path"
    for (let at = 0; at < maps.length; ) {
      let end = maps.indexOf('\n', at);
      if (end < 0) end = maps.length;
      const line = maps.slice(at, end);
      at = end + 1;
      const slash = line.indexOf('/');
      if (slash < 0) continue;
      const f = line.slice(0, slash).split(' ').filter(Boolean);
      // executable mappings only: the code a uprobe goes on
      if (f.length < 5 || f[1]![2] !== 'x') continue;
      const path = line.slice(slash);
      if (path.endsWith(' (deleted)')) continue;
      const file = `${f[3]}:${f[4]}`;
      if (seen?.has(file)) continue;
      (seen ??= new Set()).add(file);
      const mapped: MappedFile = { path, openPath: `/proc/${pid}/root${path}`, exe: path === exe };
      entry.files.push({ file, mapped });
      this.#visit(pid, file, mapped, no);
    }
  }

  /** a file process `pid` maps, at scan `no` */
  #visit(pid: string, file: string, mapped: MappedFile, no: number): void {
    for (const fam of this.#families) {
      if (!fam.candidate(mapped)) continue;
      const key = `${fam.name}|${file}`;
      let st = this.#files.get(key);
      if (!st) {
        st = this.#consider(fam, file, mapped);
        this.#files.set(key, st);
      }
      st.seenScan = no;
      st.pidsNow++;
      if (st.status === 'attached' && fam.processMapped) {
        const n = Number(pid);
        (st.pidsSeen ??= new Set()).add(n);
        if (!(st.pids ??= new Set()).has(n)) {
          st.pids.add(n);
          fam.processMapped(n, st.plan!);
        }
      }
    }
  }

  /** the first sight of a file: read its symbols, attach when it carries the API */
  #consider(fam: ProbeFamily, file: string, m: MappedFile): FileState {
    const st: FileState = {
      family: fam.name,
      familyRef: fam,
      file,
      path: m.path,
      openPath: m.openPath,
      exe: m.exe,
      status: 'none',
      reason: undefined,
      probes: 0,
      processes: 0,
      links: [],
      plan: undefined,
      seenScan: 0,
      pidsNow: 0,
      pids: undefined,
      pidsSeen: undefined,
    };
    this.counters.files_checked++;
    this.#attach(st);
    return st;
  }

  #attach(st: FileState): void {
    let plan;
    try {
      plan = st.familyRef.plan({ path: st.path, openPath: st.openPath, exe: st.exe });
    } catch (err) {
      plan = { reason: (err as Error).message, level: 'error' as const };
    }
    if (!Array.isArray(plan)) {
      st.status = plan.level;
      st.reason = plan.reason;
      if (plan.level === 'error') this.counters.files_error++;
      if (plan.level === 'stripped') this.counters.files_stripped++;
      return;
    }
    if (this.counters.attached_now >= this.#maxFiles) {
      st.familyRef.released?.(plan);
      if (st.status !== 'over-limit') this.counters.files_over_limit++;
      st.status = 'over-limit';
      st.reason = `${this.#maxFiles} files have probes already (the bound)`;
      return;
    }
    try {
      for (const p of plan) st.links.push(this.#cap.attachUprobe({ program: p.program, path: st.openPath, offset: p.offset, retprobe: p.retprobe, cookie: p.cookie }));
    } catch (err) {
      for (const l of st.links) this.#cap.detachUprobe(l);
      st.links = [];
      st.familyRef.released?.(plan);
      st.status = 'error';
      st.reason = (err as Error).message;
      this.counters.attach_errors++;
      this.counters.files_error++;
      return;
    }
    st.status = 'attached';
    st.reason = undefined;
    st.plan = plan;
    st.probes = st.links.length;
    this.counters.files_attached++;
    this.counters.attached_now++;
    this.counters.probes_now += st.links.length;
  }

  /** the family forgets the processes that no longer map the file (all of them once detached) */
  #goneProcesses(st: FileState, all = false): void {
    if (st.pids && st.plan) {
      for (const pid of st.pids) {
        if (!all && st.pidsSeen?.has(pid)) continue;
        st.pids.delete(pid);
        st.familyRef.processGone?.(pid, st.plan);
      }
    }
    st.pidsSeen = undefined;
  }

  #release(st: FileState): void {
    if (st.status !== 'attached') return;
    this.#goneProcesses(st, true);
    for (const l of st.links) this.#cap.detachUprobe(l);
    if (st.plan) st.familyRef.released?.(st.plan);
    st.plan = undefined;
    this.counters.probes_now -= st.links.length;
    this.counters.attached_now--;
    this.counters.files_detached++;
    st.links = [];
    st.probes = 0;
    st.status = 'none';
  }

  /** the files worth a line in `osprey status`: attached, stripped, in error, over the bound */
  files(): WatchedFile[] {
    const out: WatchedFile[] = [];
    for (const st of this.#files.values()) {
      if (st.status === 'none') continue;
      out.push({ family: st.family, file: st.file, path: st.path, status: st.status, reason: st.reason, probes: st.probes, processes: st.processes });
    }
    return out;
  }

  /** detaches everything; idempotent (the capture's close detaches too) */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    for (const st of this.#files.values()) this.#release(st);
    this.#files.clear();
  }
}
