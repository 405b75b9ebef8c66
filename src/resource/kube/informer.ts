// One watched resource: the official client's ListWatch (list, then watch from the list's
// resourceVersion; a 410 Gone relists) with what it leaves to its user:
// - objects slimmed before they are cached (./objects.ts), list items and watch events alike;
// - BOOKMARK events asked for (allowWatchBookmarks), so a resumed watch starts from a recent
//   revision even when nothing it selects changed, instead of an expired one (a relist);
// - restarts: ListWatch stops for good on any error but 410; here it starts again after a
//   backoff (1 s doubling to 30 s), and every error is counted and described for a person.
import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { SlimMeta } from './objects.js';
import { describeKubeError } from './errors.js';

type Slimmed = { metadata: SlimMeta };

export interface InformerStats {
  /** full lists (the first one, and every relist after a 410 or an error) */
  lists: number;
  /** watch requests started */
  watches: number;
  /** ADDED/MODIFIED/DELETED events */
  events: number;
  bookmarks: number;
  errors: number;
  /** a list succeeded and no error came since */
  synced: boolean;
  lastError: string | undefined;
}

export interface InformerOptions<T extends Slimmed> {
  kubeconfig: KubeConfig;
  /** the API path, e.g. /api/v1/pods */
  path: string;
  /** what is watched, for messages: `pods on node worker-3` */
  what: string;
  list: () => Promise<{ metadata?: { resourceVersion?: string }; items: unknown[] }>;
  slim: (raw: unknown) => T;
  fieldSelector?: string;
  onAdd?: (o: T) => void;
  onUpdate?: (o: T) => void;
  onDelete?: (o: T) => void;
  /** every error, described (the informer restarts by itself) */
  onError?: (message: string) => void;
  /** first restart delay, ms (default 1000; doubles up to maxBackoffMs) */
  backoffMs?: number;
  maxBackoffMs?: number;
}

/** the client's Watch, asking for bookmarks and slimming what it passes on */
class SlimWatch<T> extends Watch {
  /** set by Informer.stop(): a watch that connects afterwards is closed at once */
  stopped = false;

  constructor(
    kubeconfig: KubeConfig,
    private readonly slim: (raw: unknown) => T,
    private readonly stats: InformerStats,
    private readonly ok: () => void,
  ) {
    super(kubeconfig);
  }

  override async watch(
    path: string,
    queryParams: Record<string, unknown>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    this.stats.watches++;
    let failed = false;
    const controller = await super.watch(
      path,
      { ...queryParams, allowWatchBookmarks: true },
      (phase, obj, raw) => {
        if (phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED') {
          this.stats.events++;
          callback(phase, this.slim(obj), raw);
          return;
        }
        if (phase === 'BOOKMARK') this.stats.bookmarks++;
        callback(phase, obj, raw);
      },
      (err) => {
        if (err) failed = true;
        done(err);
      },
    );
    // ListWatch.stop() aborts the watch it knows; one that was still connecting then (after a
    // relist) would stay open for good
    if (this.stopped) controller.abort();
    // the stream answered 200 (else done() ran already): the watch is live
    else if (!failed) this.ok();
    return controller;
  }
}

export class Informer<T extends Slimmed> {
  readonly stats: InformerStats = { lists: 0, watches: 0, events: 0, bookmarks: 0, errors: 0, synced: false, lastError: undefined };
  readonly #lw: ListWatch<T & KubernetesObject>;
  readonly #watch: SlimWatch<T>;
  readonly #opts: InformerOptions<T>;
  #retry: NodeJS.Timeout | undefined;
  #backoff: number;
  #stopped = false;

  constructor(opts: InformerOptions<T>) {
    this.#opts = opts;
    this.#backoff = opts.backoffMs ?? 1000;
    const watch = new SlimWatch(opts.kubeconfig, opts.slim, this.stats, () => this.#healthy());
    this.#watch = watch;
    const list = async (): Promise<KubernetesListObject<T & KubernetesObject>> => {
      this.stats.lists++;
      const l = await opts.list();
      this.#healthy();
      return { metadata: l.metadata ?? {}, items: l.items.map((i) => opts.slim(i) as T & KubernetesObject) };
    };
    this.#lw = new ListWatch<T & KubernetesObject>(opts.path, watch, list, false, undefined, opts.fieldSelector);
    if (opts.onAdd) this.#lw.on('add', opts.onAdd);
    if (opts.onUpdate) this.#lw.on('update', opts.onUpdate);
    if (opts.onDelete) this.#lw.on('delete', opts.onDelete);
    this.#lw.on('error', (err: unknown) => this.#failed(err));
  }

  start(): void {
    this.#stopped = false;
    this.#watch.stopped = false;
    this.#lw.start().catch((err: unknown) => this.#failed(err));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watch.stopped = true;
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = undefined;
    await this.#lw.stop();
  }

  get(name: string, namespace: string): T | undefined {
    return this.#lw.get(name, namespace);
  }

  list(): readonly T[] {
    return this.#lw.list();
  }

  #healthy(): void {
    this.stats.synced = true;
    this.stats.lastError = undefined;
    this.#backoff = this.#opts.backoffMs ?? 1000;
  }

  #failed(err: unknown): void {
    // the abort of our own stop() is no error
    if (this.#stopped) return;
    this.stats.errors++;
    this.stats.synced = false;
    const msg = describeKubeError(err, this.#opts.what, this.#opts.kubeconfig.getCurrentCluster()?.server ?? '');
    this.stats.lastError = msg;
    this.#opts.onError?.(msg);
    if (this.#stopped || this.#retry) return;
    const delay = this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, this.#opts.maxBackoffMs ?? 30_000);
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (!this.#stopped) this.start();
    }, delay);
    this.#retry.unref();
  }
}
