// The agent's background threads run at a lower CPU priority than the two that must keep up
// with the traffic: the JS thread (it drains the ring buffer's events into spans) and the ring
// buffer's reader thread.
//
// What the agent does in bursts is background work that loses nothing by waiting: DuckDB
// compressing a row group at a checkpoint (a few hundred ms of CPU on one of its threads every
// ~15 s at 4k req/s), V8's concurrent GC and compiler threads, zlib compressing an export batch
// on libuv's pool, a query. When the agent is short of CPU (a container CPU limit, a busy
// node), the event drain should not queue behind them: the ring buffer would fill and drop.
// Under contention a nice-10 thread gets about a tenth of a nice-0 thread's share (CFS weights
// 110 against 1024); on an idle core it runs at full speed.
//
// Nice only ranks threads of one scheduling group. With autogroup (Debian's default: one group
// per session) or cgroups (a pod, a systemd service with the cpu controller), applications in
// other groups are ranked against the agent by the groups' weights (Kubernetes CPU requests),
// not by this: it does not make the agent yield to them (measured in the review of session 10:
// busy loops at nice 19 and 0 in two sessions on one CPU got 50% each).
//
// Threads appear over time (libuv starts its pool on first use, DuckDB its workers when the
// store opens), so the task list is read again periodically; a thread keeps its nice value once
// set. Raising a thread's nice value needs no privilege (setpriority(2) on a thread id).
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** threads that keep the default priority, by name (/proc/<pid>/task/<tid>/comm) */
const URGENT_THREADS = new Set(['osprey-ringbuf']);

export interface BackgroundPriorityCounters {
  /** threads of this process running at the lower priority now */
  threads_lowered: number;
  /** setpriority or /proc reads that failed (the thread keeps its priority) */
  errors: number;
}

export class BackgroundPriority {
  readonly counters: BackgroundPriorityCounters = { threads_lowered: 0, errors: 0 };
  /** the nice value background threads get: the process's own plus `nice`, at most 19 */
  readonly #nice: number;
  /** the process's own nice value (the JS thread's) */
  readonly #base: number;
  readonly #pid: number;
  /** thread ids already looked at: true when lowered */
  readonly #seen = new Map<number, boolean>();
  #timer: NodeJS.Timeout | undefined;

  /** nice: 1..19, added to the process's own nice value (a higher value yields more); pid: this process */
  constructor(nice: number, pid = process.pid) {
    if (!Number.isInteger(nice) || nice < 1 || nice > 19) throw new RangeError(`nice must be an integer from 1 to 19, got ${nice}`);
    this.#pid = pid;
    this.#base = getPriority(pid);
    this.#nice = Math.min(19, this.#base + nice);
  }

  get nice(): number {
    return this.#nice;
  }

  /** the process's own nice value, which `nice` adds to */
  get base(): number {
    return this.#base;
  }

  /**
   * Lowers the threads started since the last pass (returns how many); reads the names of the
   * lowered ones again (one /proc read each) in case one has since named itself urgent.
   */
  apply(): number {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${this.#pid}/task`);
    } catch {
      this.counters.errors++;
      return 0;
    }
    let lowered = 0;
    const alive = new Set<number>();
    for (const t of tids) {
      const tid = Number(t);
      alive.add(tid);
      const was = this.#seen.get(tid);
      if (was === false || tid === this.#pid) continue;
      let name: string;
      try {
        name = readFileSync(`/proc/${this.#pid}/task/${t}/comm`, 'latin1').trim();
      } catch {
        continue; // the thread ended
      }
      if (was === true) {
        // a thread names itself once it runs: one lowered before it did gets its priority back
        // (that needs CAP_SYS_NICE; without it the failure is counted)
        if (!URGENT_THREADS.has(name)) continue;
        try {
          setPriority(tid, this.#base);
          this.#seen.set(tid, false);
        } catch {
          this.counters.errors++;
        }
        continue;
      }
      if (URGENT_THREADS.has(name)) {
        this.#seen.set(tid, false);
        continue;
      }
      try {
        setPriority(tid, this.#nice);
        this.#seen.set(tid, true);
        lowered++;
      } catch {
        this.#seen.set(tid, false);
        this.counters.errors++;
      }
    }
    // forget ended threads (a reused id is a new thread)
    for (const tid of this.#seen.keys()) if (!alive.has(tid)) this.#seen.delete(tid);
    let now = 0;
    for (const low of this.#seen.values()) if (low) now++;
    this.counters.threads_lowered = now;
    return lowered;
  }

  /** applies now and every `everyMs` */
  start(everyMs = 5000): void {
    this.apply();
    this.#timer = setInterval(() => this.apply(), everyMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** nice value of one thread of a process (field 19 of /proc/<pid>/task/<tid>/stat) */
export function threadNice(pid: number, tid: number): number {
  const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
  return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[16]);
}
