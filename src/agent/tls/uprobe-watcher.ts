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
// next scan.
//
// Lifetime: a file no process maps any more keeps its probes for `lingerMs` (default 5 min)
// before they come off. Short-lived processes (curl in a loop, cron jobs, a CLI that runs for
// a second) mostly map a file for less than a scan period: they are covered only while the
// file's probes are on, so detaching at the first scan that sees nobody left each of them
// to luck, and every exit cost a detach. Probes on a file nobody runs cost nothing, but they
// hold the path they were opened through: only a file opened in the agent's own mount
// namespace that its path still names lingers (sameMountNs, onOwnRoot); a container's file or
// a deleted one is detached at once, so the mount can go and the space is freed. The bound
// (maxFiles) counts lingering files, and when it bites the longest-unused lingering file makes
// room. Detaching is slow in wall time (bpf_link__destroy waits for an RCU grace
// period per link: a file's ~11 links blocked the JS thread 1-3 s): it runs on a native
// worker thread (Capture.detachUprobes) and the watcher hears when it is done. A file seen
// again while its old links are still being destroyed waits for that before it is attached
// again: two sets of probes on one file would report every call twice. The processes that
// call into it during that window (typically well under a second) are not covered; such
// re-attachments are counted (reattach_waited) with the time they waited.
// A process's maps are read again only when its address space changed size or the pid is
// another process's (/proc/<pid>/stat: its start time and size, a few hundred bytes): on a machine of 150 processes a scan took 20-25 ms of CPU reading every
// maps file, ~5 ms with most of them unchanged (two watchers scan: TLS and Go runtime).
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, statSync } from 'node:fs';
import type { UprobeTarget } from '../../kernel/index.js';
import type { MappedFile, ProbeFamily, ProbeSpec } from './probe-family.js';

/** what the watcher needs of the capture (src/kernel Capture) */
export interface UprobeAttacher {
  attachUprobe(t: UprobeTarget): number;
  detachUprobe(link: number): boolean;
  /** detaches off the JS thread, resolves once every link is gone (src/kernel Capture); without it, detachUprobe one by one */
  detachUprobes?(links: readonly number[]): Promise<number>;
}

export interface UprobeWatcherOptions {
  families: readonly ProbeFamily[];
  /** period of the /proc scan, ms (default 2000) */
  scanMs?: number;
  /** most files with probes attached at once (default 64); more are counted and left out */
  maxFiles?: number;
  /**
   * how long a file no process maps any more keeps its probes, ms (default 300000): a process
   * that maps it within that time is covered from its start. 0: detached at the first scan
   * that sees no process mapping it
   */
  lingerMs?: number;
  /** leave this process out (default: this one) */
  excludePid?: number;
  /** called with an error the scan itself hit (it carries on at the next period) */
  onError?: (err: unknown) => void;
}

/** 'detaching': its probes are coming off (they may still fire until that is done) */
export type FileStatus = 'attached' | 'detaching' | 'none' | 'stripped' | 'error' | 'over-limit';

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
  /** attached, but no process has mapped it for this long, ms (it lingers; undefined: in use) */
  idleMs?: number;
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
  /** files with probes attached now (lingering and detaching ones included: the bound counts them), and their probes */
  attached_now: number;
  probes_now: number;
  /** attached files no process maps now (their probes stay for lingerMs) */
  lingering_now: number;
  /** times a file started to linger, and times a process mapped a lingering file again (covered at once) */
  files_lingered: number;
  linger_reused: number;
  /** files detached because they lingered lingerMs, and because the bound needed room for another */
  detached_after_linger: number;
  /** files detached as soon as no process mapped them, not lingering: opened through another
   *  mount namespace (a container's) or deleted since; lingering probes would pin the mount */
  detached_not_on_host: number;
  detached_for_room: number;
  /** files whose probes are being detached now (off the JS thread), and the last detach's duration, ms */
  detaching_now: number;
  detach_last_ms: number;
  /** files seen again while their old probes were coming off: attached once that was done */
  reattach_waited: number;
  /** the longest such wait, ms: the window in which that file's new processes were not covered */
  reattach_wait_max_ms: number;
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
  /** the processes seen mapping it at the current scan (attached, detaching or waiting for room) */
  pidsSeen: Set<number> | undefined;
  /** pidsSeen of the last scan: a file attached between scans tells its family of them (see #attach) */
  pidsLast: Set<number> | undefined;
  /** performance.now() of the first scan that saw no process mapping it (undefined: mapped) */
  idleSince: number | undefined;
  /** its probes were opened through a process of this agent's own mount namespace (see onOwnRoot) */
  ownMounts: boolean;
  /** while detaching: it was detached to make room for another file; performance.now() of the detach's start */
  forRoom: boolean;
  detachAt: number;
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
    lingering_now: 0,
    files_lingered: 0,
    linger_reused: 0,
    detached_after_linger: 0,
    detached_not_on_host: 0,
    detached_for_room: 0,
    detaching_now: 0,
    detach_last_ms: 0,
    reattach_waited: 0,
    reattach_wait_max_ms: 0,
  };
  readonly #cap: UprobeAttacher;
  readonly #families: readonly ProbeFamily[];
  readonly #scanMs: number;
  readonly #maxFiles: number;
  readonly #lingerMs: number;
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
    this.#lingerMs = opts.lingerMs ?? 300_000;
    if (!(this.#lingerMs >= 0)) throw new RangeError(`lingerMs must be >= 0, got ${this.#lingerMs}`);
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
    const now = performance.now();
    for (const [key, st] of this.#files) {
      st.processes = st.pidsNow;
      st.pidsNow = 0;
      this.#goneProcesses(st);
      if (st.seenScan === no) {
        if (st.idleSince !== undefined) {
          // mapped again while lingering: its probes are on already
          st.idleSince = undefined;
          this.counters.lingering_now--;
          this.counters.linger_reused++;
        }
        continue;
      }
      if (st.status === 'attached') {
        if (st.idleSince === undefined) {
          // a uprobe holds the path it was opened through (mount and dentry): probes opened
          // through another mount namespace's root (a container's) would keep its mounts busy
          // (its teardown fails with EBUSY), a deleted file's space stays taken. Only a file
          // opened in the agent's own mount namespace that its path still names lingers.
          if (this.#lingerMs > 0 && !(st.ownMounts && onOwnRoot(st.path, st.file))) {
            this.counters.detached_not_on_host++;
            this.#release(st, false);
            continue;
          }
          st.idleSince = now;
          this.counters.lingering_now++;
          this.counters.files_lingered++;
        }
        if (now - st.idleSince >= this.#lingerMs) {
          this.counters.detached_after_linger++;
          this.#release(st, false);
        }
        continue;
      }
      // a detaching file stays known until its detach is done (#detached)
      if (st.status !== 'detaching') this.#files.delete(key);
    }
    this.#retryOverLimit();
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
      // a later attach (after a detach, or at the bound) opens the file through a process alive now
      st.openPath = mapped.openPath;
      // a detaching file, or one waiting for room, notes its processes too: it may be
      // attached before the next scan (#attach)
      if (fam.processMapped && (st.status === 'attached' || st.status === 'detaching' || st.status === 'over-limit')) {
        const n = Number(pid);
        (st.pidsSeen ??= new Set()).add(n);
        if (st.status === 'attached' && !(st.pids ??= new Set()).has(n)) {
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
      pidsLast: undefined,
      idleSince: undefined,
      ownMounts: false,
      forRoom: false,
      detachAt: 0,
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
      // a family out of slots (its own bound) makes room like the watcher's bound does
      if (plan.full && this.#makeRoom(st, st.familyRef)) return;
      st.status = plan.level;
      st.reason = plan.reason;
      if (plan.level === 'error') this.counters.files_error++;
      if (plan.level === 'stripped') this.counters.files_stripped++;
      return;
    }
    if (this.counters.attached_now >= this.#maxFiles) {
      st.familyRef.released?.(plan);
      if (this.#makeRoom(st, undefined)) return;
      // counted once per file left out (a file that was waiting for room is left out now)
      if (st.status !== 'over-limit' || st.reason?.startsWith('waiting')) this.counters.files_over_limit++;
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
    st.ownMounts = sameMountNs(st.openPath);
    st.plan = plan;
    st.probes = st.links.length;
    this.counters.files_attached++;
    this.counters.attached_now++;
    this.counters.probes_now += st.links.length;
    // attached again once its old probes were off, or after waiting for room: that happens
    // after the scan's visits or between scans, and the processes running it would hear of
    // it (the runtime-context family registers them) only at the next scan. Those of the last
    // scan and of this one so far are told now; one gone since is forgotten at the next scan.
    const fam = st.familyRef;
    if (fam.processMapped) {
      for (const seen of [st.pidsLast, st.pidsSeen]) {
        if (seen === undefined) continue;
        for (const pid of seen) {
          if ((st.pids ??= new Set()).has(pid)) continue;
          st.pids.add(pid);
          fam.processMapped(pid, plan);
        }
      }
    }
  }

  /**
   * The family forgets the processes that no longer map the file: at the end of a scan those
   * it did not see (the scan's then become the last scan's), all of them once detached.
   */
  #goneProcesses(st: FileState, all = false): void {
    if (st.pids && st.plan) {
      for (const pid of st.pids) {
        if (!all && st.pidsSeen?.has(pid)) continue;
        st.pids.delete(pid);
        st.familyRef.processGone?.(pid, st.plan);
      }
    }
    if (all) return;
    st.pidsLast = st.pidsSeen;
    st.pidsSeen = undefined;
  }

  /**
   * A file waits for room (the bound, or its family's slots): the longest-unused lingering file
   * (of `family` when given) is detached for it, unless detaches already under way will make
   * room for every file waiting. True when the file waits ('over-limit', retried once a detach
   * is done), false when nothing lingers that could go.
   */
  #makeRoom(st: FileState, family: ProbeFamily | undefined): boolean {
    let victim: FileState | undefined;
    let inFlight = 0;
    let waiting = 1;
    for (const o of this.#files.values()) {
      if (o === st) continue;
      if (family && o.familyRef !== family) continue;
      if (o.status === 'detaching' && o.forRoom) inFlight++;
      else if (o.status === 'over-limit' && o.reason?.startsWith('waiting')) waiting++;
      else if (o.status === 'attached' && o.idleSince !== undefined && (victim === undefined || o.idleSince < victim.idleSince!)) victim = o;
    }
    if (inFlight >= waiting) return this.#wait(st);
    if (victim === undefined) return inFlight > 0 && this.#wait(st);
    // marked first: a detach done at once (no worker) gives this file its turn right away
    this.#wait(st);
    this.counters.detached_for_room++;
    this.#release(victim, true);
    return true;
  }

  #wait(st: FileState): true {
    st.status = 'over-limit';
    st.reason = 'waiting for a lingering file to make room';
    return true;
  }

  /** files left out at the bound get their turn once others are gone */
  #retryOverLimit(): void {
    if (this.#stopped) return;
    for (const st of this.#files.values()) {
      if (st.status !== 'over-limit') continue;
      // a file waiting for room tries again whatever the count (its family may have been full)
      if (this.counters.attached_now < this.#maxFiles || (st.reason?.startsWith('waiting') && this.counters.detaching_now === 0)) this.#attach(st);
    }
  }

  /**
   * Takes the file's probes off: on a worker thread when the capture can (the call returns at
   * once; #detached finishes the job), else here, one by one.
   */
  #release(st: FileState, forRoom: boolean): void {
    if (st.status !== 'attached') return;
    this.#goneProcesses(st, true);
    if (st.idleSince !== undefined) {
      st.idleSince = undefined;
      this.counters.lingering_now--;
    }
    st.status = 'detaching';
    st.forRoom = forRoom;
    st.detachAt = performance.now();
    this.counters.detaching_now++;
    const links = st.links;
    if (!this.#cap.detachUprobes) {
      for (const l of links) this.#cap.detachUprobe(l);
      this.#detached(st, performance.now() - st.detachAt);
      return;
    }
    this.#cap.detachUprobes(links).then(
      (ms) => this.#detached(st, ms),
      (err: unknown) => {
        // the links are out of the capture's table either way (its close destroys what is left)
        this.#onError(err);
        this.#detached(st, performance.now() - st.detachAt);
      },
    );
  }

  /** the file's old probes are gone: it is attached again if a process maps it now, else forgotten */
  #detached(st: FileState, ms: number): void {
    if (st.plan) st.familyRef.released?.(st.plan);
    st.plan = undefined;
    this.counters.probes_now -= st.links.length;
    this.counters.attached_now--;
    this.counters.files_detached++;
    this.counters.detaching_now--;
    this.counters.detach_last_ms = Math.round(ms * 1000) / 1000;
    st.links = [];
    st.probes = 0;
    st.status = 'none';
    st.forRoom = false;
    const key = `${st.family}|${st.file}`;
    if (this.#stopped) return;
    if (st.seenScan === this.#scanNo && this.#files.get(key) === st) {
      // seen again meanwhile: its processes were not covered from then until now
      const waited = performance.now() - st.detachAt;
      this.counters.reattach_waited++;
      this.counters.reattach_wait_max_ms = Math.max(this.counters.reattach_wait_max_ms, Math.round(waited));
      this.#attach(st);
    } else if (this.#files.get(key) === st) {
      this.#files.delete(key);
    }
    this.#retryOverLimit();
  }

  /** the files worth a line in `osprey status`: attached, stripped, in error, over the bound */
  files(): WatchedFile[] {
    const out: WatchedFile[] = [];
    for (const st of this.#files.values()) {
      if (st.status === 'none') continue;
      const w: WatchedFile = { family: st.family, file: st.file, path: st.path, status: st.status, reason: st.reason, probes: st.probes, processes: st.processes };
      if (st.idleSince !== undefined) w.idleMs = Math.round(performance.now() - st.idleSince);
      out.push(w);
    }
    return out;
  }

  /**
   * Detaches everything; idempotent. Off the JS thread, all files at once, when the capture
   * can (its close waits for those detaches; closing it right away is fine).
   */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    for (const st of this.#files.values()) this.#release(st, false);
    this.#files.clear();
  }
}

/** this process's mount namespace (readlink of /proc/self/ns/mnt), read once */
let ownMntNs: string | undefined;

/**
 * Whether the process whose root `openPath` goes through (/proc/<pid>/root/...) is in this
 * agent's mount namespace: then the probes hold mounts the agent sees anyway, which outlive
 * that process. False when it cannot be told (the process is gone, no permission).
 */
export function sameMountNs(openPath: string): boolean {
  const m = /^\/proc\/(\d+)\/root\//.exec(openPath);
  if (!m) return false;
  try {
    ownMntNs ??= readlinkSync('/proc/self/ns/mnt');
    return readlinkSync(`/proc/${m[1]}/ns/mnt`) === ownMntNs;
  } catch {
    return false;
  }
}

/**
 * Whether `path` in this process's root names the file a process mapped: `file` is
 * "major:minor:inode" as /proc/<pid>/maps gives them (device numbers in hex). False for a
 * deleted or replaced file.
 */
export function onOwnRoot(path: string, file: string): boolean {
  const [maj, min, ino] = file.split(':');
  if (maj === undefined || min === undefined || ino === undefined) return false;
  try {
    const st = statSync(path, { bigint: true });
    // the kernel's new_encode_dev: minor's low 8 bits, major's 12, minor's upper bits
    const dev = st.dev;
    const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
    const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
    return major === BigInt(`0x${maj}`) && minor === BigInt(`0x${min}`) && st.ino === BigInt(ino);
  } catch {
    return false;
  }
}
