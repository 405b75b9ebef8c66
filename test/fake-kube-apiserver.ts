// A FAKE Kubernetes API server, for tests only: no real kube-apiserver can run on the test
// machines (no container images, no Kubernetes server binaries from the registries), so this
// one speaks the part of its HTTP API that Osprey's informers use, with the real semantics:
//
// - GET /api/v1/<resource> and /apis/<group>/<version>/<resource> (all namespaces),
//   .../namespaces/<ns>/<resource> (one namespace), .../<resource>/<name> (get): lists are
//   `<Kind>List` objects whose metadata.resourceVersion is the store's current revision;
//   their items carry no kind/apiVersion (as the real server's JSON lists).
// - `?watch=true&resourceVersion=N`: a chunked stream of `{"type":…,"object":…}` lines - the
//   events after revision N (kept in a bounded history), then live ones. No resourceVersion
//   (or "0"): synthetic ADDED events for every current object first. A revision older than
//   the history's start: one ERROR event with a 410 Expired Status, then the stream ends - the
//   client must relist. `allowWatchBookmarks=true`: BOOKMARK events with the current revision
//   every `bookmarkMs`.
// - `fieldSelector` (metadata.name, metadata.namespace, and per resource the fields the real
//   server indexes, e.g. spec.nodeName for pods; =, ==, !=, comma = and) and equality
//   `labelSelector`, on lists and watches; an object modified into or out of a watch's
//   selector arrives as ADDED or DELETED, as the real server's watch cache sends it. An
//   unsupported field label is a 400 Status.
// - HTTPS with its own certificate (the kubeconfig trusts it through
//   certificate-authority-data, as kubeadm writes one), bearer-token auth (401 without it),
//   and per-resource 403 Forbidden Statuses on demand (forbid()), worded as RBAC words them.
// Objects are the fixtures' JSON (test/fixtures/kube/), shaped as a real cluster returns them.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type KubeObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; uid?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
};

interface ResourceType {
  /** URL prefix: /api/v1 or /apis/<group>/<version> */
  prefix: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  /** field labels the real server supports for this resource beyond metadata.name/namespace */
  fields: string[];
}

const TYPES: ResourceType[] = [
  { prefix: '/api/v1', plural: 'pods', kind: 'Pod', namespaced: true, fields: ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'spec.hostNetwork', 'status.phase', 'status.podIP', 'status.nominatedNodeName'] },
  { prefix: '/api/v1', plural: 'services', kind: 'Service', namespaced: true, fields: ['spec.clusterIP', 'spec.type'] },
  { prefix: '/api/v1', plural: 'nodes', kind: 'Node', namespaced: false, fields: ['spec.unschedulable'] },
  { prefix: '/api/v1', plural: 'namespaces', kind: 'Namespace', namespaced: false, fields: ['status.phase'] },
  { prefix: '/apis/apps/v1', plural: 'replicasets', kind: 'ReplicaSet', namespaced: true, fields: ['status.replicas'] },
  { prefix: '/apis/apps/v1', plural: 'deployments', kind: 'Deployment', namespaced: true, fields: [] },
  { prefix: '/apis/batch/v1', plural: 'jobs', kind: 'Job', namespaced: true, fields: ['status.successful'] },
];

interface Event {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  plural: string;
  object: KubeObject;
  /** the object before a MODIFIED (decides ADDED/DELETED for selector watches) */
  old?: KubeObject;
}

interface Watcher {
  type: ResourceType;
  namespace: string | undefined;
  match: (o: KubeObject) => boolean;
  res: http.ServerResponse;
  bookmarks: NodeJS.Timeout | undefined;
}

type Selector = (o: KubeObject) => boolean;

export interface FakeKubeApiServerOptions {
  /** required bearer token (default: a random one) */
  token?: string;
  /** BOOKMARK interval for watches that allow them (default 1000 ms) */
  bookmarkMs?: number;
  /** events kept for watches resuming from an older revision (default 1000) */
  historyLimit?: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
}

export class FakeKubeApiServer {
  readonly token: string;
  url = '';
  /** every request, in order (tests assert on selectors and relists) */
  readonly requests: RecordedRequest[] = [];
  readonly #server: https.Server;
  readonly #cert: { key: string; cert: string };
  readonly #objects = new Map<string, Map<string, KubeObject>>(); // plural -> ns/name -> object
  readonly #history: Event[] = [];
  readonly #historyLimit: number;
  /** revisions at or below this are compacted away (a watch from there gets 410) */
  #compactedTo = 0;
  #rv = 1000;
  readonly #watchers = new Set<Watcher>();
  readonly #forbidden = new Set<string>();
  readonly #bookmarkMs: number;
  readonly #sockets = new Set<Socket>();

  private constructor(opts: FakeKubeApiServerOptions) {
    this.token = opts.token ?? `fake-${Math.random().toString(36).slice(2)}`;
    this.#bookmarkMs = opts.bookmarkMs ?? 1000;
    this.#historyLimit = opts.historyLimit ?? 1000;
    for (const t of TYPES) this.#objects.set(t.plural, new Map());
    this.#cert = serverCertificate();
    this.#server = https.createServer(this.#cert, (req, res) => this.#handle(req, res));
    this.#server.on('connection', (sock: Socket) => {
      this.#sockets.add(sock);
      sock.on('close', () => this.#sockets.delete(sock));
    });
  }

  static async start(opts: FakeKubeApiServerOptions = {}): Promise<FakeKubeApiServer> {
    const s = new FakeKubeApiServer(opts);
    await new Promise<void>((resolve) => s.#server.listen(0, '127.0.0.1', resolve));
    s.url = `https://127.0.0.1:${(s.#server.address() as AddressInfo).port}`;
    return s;
  }

  /** a kubeconfig file that points at this server with its token, as `kubectl config view --raw` writes one */
  writeKubeconfig(path: string, namespace = 'default'): string {
    const yaml = [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- cluster:',
      `    certificate-authority-data: ${Buffer.from(this.#cert.cert).toString('base64')}`,
      `    server: ${this.url}`,
      '  name: fake-cluster',
      'contexts:',
      '- context:',
      '    cluster: fake-cluster',
      `    namespace: ${namespace}`,
      '    user: osprey-agent',
      '  name: fake',
      'current-context: fake',
      'preferences: {}',
      'users:',
      '- name: osprey-agent',
      '  user:',
      `    token: ${this.token}`,
      '',
    ].join('\n');
    writeFileSync(path, yaml, { mode: 0o600 });
    return path;
  }

  get resourceVersion(): number {
    return this.#rv;
  }

  /** creates an object (ADDED); its resourceVersion, uid and creationTimestamp are set as the server sets them */
  add(obj: KubeObject): KubeObject {
    const t = this.#type(obj.kind);
    const o = structuredClone(obj);
    o.metadata.uid ??= randomUid();
    (o.metadata as Record<string, unknown>)['creationTimestamp'] ??= new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    o.metadata.resourceVersion = String(++this.#rv);
    this.#objects.get(t.plural)!.set(key(o), o);
    this.#record({ rv: this.#rv, type: 'ADDED', plural: t.plural, object: o });
    return o;
  }

  /** replaces an existing object (MODIFIED) */
  update(obj: KubeObject): KubeObject {
    const t = this.#type(obj.kind);
    const store = this.#objects.get(t.plural)!;
    const old = store.get(key(obj));
    if (!old) throw new Error(`fake apiserver: no ${obj.kind} ${key(obj)} to update`);
    const o = structuredClone(obj);
    o.metadata.uid = old.metadata.uid;
    o.metadata.resourceVersion = String(++this.#rv);
    store.set(key(o), o);
    this.#record({ rv: this.#rv, type: 'MODIFIED', plural: t.plural, object: o, old });
    return o;
  }

  /** deletes an object (DELETED, carrying its last state with a new resourceVersion) */
  remove(kind: string, namespace: string | undefined, name: string): void {
    const t = this.#type(kind);
    const store = this.#objects.get(t.plural)!;
    const k = `${namespace ?? ''}/${name}`;
    const old = store.get(k);
    if (!old) throw new Error(`fake apiserver: no ${kind} ${k} to delete`);
    store.delete(k);
    const o = structuredClone(old);
    o.metadata.resourceVersion = String(++this.#rv);
    this.#record({ rv: this.#rv, type: 'DELETED', plural: t.plural, object: o });
  }

  get(kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.#objects.get(this.#type(kind).plural)!.get(`${namespace ?? ''}/${name}`);
  }

  /** forgets the event history (etcd compaction): a watch resuming from an older revision gets 410 Gone */
  compact(): void {
    this.#history.length = 0;
    this.#compactedTo = this.#rv;
  }

  /** ends every open watch (the real server ends each after its timeout); clients resume from their revision */
  closeWatches(): void {
    for (const w of [...this.#watchers]) this.#endWatch(w);
  }

  /** RBAC denial for a resource (e.g. 'pods', 'replicasets') until allowed again */
  forbid(plural: string, on = true): void {
    if (on) this.#forbidden.add(plural);
    else this.#forbidden.delete(plural);
    if (on) for (const w of [...this.#watchers]) if (w.type.plural === plural) this.#endWatch(w);
  }

  /** open watches, per resource */
  watches(plural: string): number {
    let n = 0;
    for (const w of this.#watchers) if (w.type.plural === plural) n++;
    return n;
  }

  async stop(): Promise<void> {
    this.closeWatches();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    // every socket, including one a client opened a moment ago and has not sent on yet
    for (const sock of this.#sockets) sock.destroy();
    await closed;
  }

  #type(kind: string): ResourceType {
    const t = TYPES.find((x) => x.kind === kind);
    if (!t) throw new Error(`fake apiserver: kind ${kind} not served`);
    return t;
  }

  #record(e: Event): void {
    this.#history.push(e);
    if (this.#history.length > this.#historyLimit) {
      const dropped = this.#history.shift()!;
      this.#compactedTo = dropped.rv;
    }
    for (const w of this.#watchers) if (w.type.plural === e.plural) this.#send(w, e);
  }

  /** one event to one watcher, as the watch cache filters it by the watcher's selector */
  #send(w: Watcher, e: Event): void {
    if (w.namespace !== undefined && e.object.metadata.namespace !== w.namespace) return;
    const now = w.match(e.object);
    let type: string = e.type;
    if (e.type === 'MODIFIED') {
      const before = e.old !== undefined && w.match(e.old);
      if (!now && !before) return;
      if (now && !before) type = 'ADDED';
      else if (!now && before) type = 'DELETED';
    } else if (!now) return;
    write(w.res, { type, object: withKind(w.type, e.object) });
  }

  #endWatch(w: Watcher): void {
    this.#watchers.delete(w);
    if (w.bookmarks) clearInterval(w.bookmarks);
    w.res.end();
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const u = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(u.searchParams);
    this.requests.push({ method: req.method ?? 'GET', path: u.pathname, query });
    if (req.headers.authorization !== `Bearer ${this.token}`) {
      return status(res, 401, 'Unauthorized', 'Unauthorized');
    }
    const route = parsePath(u.pathname);
    if (!route) return status(res, 404, 'NotFound', 'the server could not find the requested resource');
    const { type, namespace, name } = route;
    if (req.method !== 'GET') return status(res, 405, 'MethodNotAllowed', `the fake API server serves GET only, not ${req.method}`);
    const watch = query['watch'] === 'true' || query['watch'] === '1';
    const verb = name !== undefined ? 'get' : watch ? 'watch' : 'list';
    if (this.#forbidden.has(type.plural)) {
      const scope = namespace !== undefined ? `in the namespace "${namespace}"` : 'at the cluster scope';
      const group = type.prefix === '/api/v1' ? '' : type.prefix.split('/')[2];
      return status(
        res,
        403,
        'Forbidden',
        `${type.plural}${name ? ` "${name}"` : ''} is forbidden: User "system:serviceaccount:osprey:osprey-agent" cannot ${verb} resource "${type.plural}" in API group "${group}" ${scope}`,
        { name, kind: type.plural, ...(group ? { group } : {}) },
      );
    }
    const store = this.#objects.get(type.plural)!;
    if (name !== undefined) {
      const o = store.get(`${namespace ?? ''}/${name}`);
      if (!o) return status(res, 404, 'NotFound', `${type.plural}${type.prefix === '/api/v1' ? '' : `.${type.prefix.split('/')[2]}`} "${name}" not found`, { name, kind: type.plural });
      return json(res, 200, withKind(type, o));
    }
    let match: Selector;
    try {
      match = and(fieldSelector(type, query['fieldSelector'] ?? ''), labelSelector(query['labelSelector'] ?? ''));
    } catch (err) {
      return status(res, 400, 'BadRequest', (err as Error).message);
    }
    const inScope = (o: KubeObject) => (namespace === undefined || o.metadata.namespace === namespace) && match(o);
    if (!watch) {
      const items = [...store.values()].filter(inScope).map((o) => structuredClone(o));
      return json(res, 200, { kind: `${type.kind}List`, apiVersion: type.prefix === '/api/v1' ? 'v1' : type.prefix.slice('/apis/'.length), metadata: { resourceVersion: String(this.#rv) }, items });
    }
    this.#watch(req, res, type, namespace, match, inScope, query);
  }

  #watch(req: http.IncomingMessage, res: http.ServerResponse, type: ResourceType, namespace: string | undefined, match: Selector, inScope: Selector, query: Record<string, string>): void {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    const from = query['resourceVersion'];
    const w: Watcher = { type, namespace, match, res, bookmarks: undefined };
    if (from === undefined || from === '' || from === '0') {
      // "any": the current state as ADDED events, then what changes
      for (const o of this.#objects.get(type.plural)!.values()) if (inScope(o)) write(res, { type: 'ADDED', object: withKind(type, o) });
    } else {
      const rv = Number(from);
      if (!Number.isFinite(rv) || rv < this.#compactedTo) {
        write(res, {
          type: 'ERROR',
          object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${from} (${this.#compactedTo + 1})`, reason: 'Expired', code: 410 },
        });
        res.end();
        return;
      }
      for (const e of this.#history) if (e.rv > rv && e.plural === type.plural) this.#send(w, e);
    }
    this.#watchers.add(w);
    if (query['allowWatchBookmarks'] === 'true') {
      w.bookmarks = setInterval(() => {
        write(res, { type: 'BOOKMARK', object: { kind: type.kind, apiVersion: type.prefix === '/api/v1' ? 'v1' : type.prefix.slice('/apis/'.length), metadata: { resourceVersion: String(this.#rv) } } });
      }, this.#bookmarkMs);
    }
    req.on('close', () => {
      this.#watchers.delete(w);
      if (w.bookmarks) clearInterval(w.bookmarks);
    });
  }
}

// ---- helpers ----------------------------------------------------------------------------

function key(o: KubeObject): string {
  return `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

function randomUid(): string {
  return randomUUID();
}

let certificate: { key: string; cert: string } | undefined;

/** a self-signed certificate for 127.0.0.1 (made once per process with openssl, valid two days) */
function serverCertificate(): { key: string; cert: string } {
  if (certificate) return certificate;
  const dir = mkdtempSync(join(tmpdir(), 'fake-kube-tls-'));
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', '/CN=kube-apiserver', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
      { stdio: 'pipe' },
    );
    certificate = { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
    return certificate;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function withKind(t: ResourceType, o: KubeObject): KubeObject {
  return { ...o, kind: t.kind, apiVersion: t.prefix === '/api/v1' ? 'v1' : t.prefix.slice('/apis/'.length) };
}

function write(res: http.ServerResponse, v: unknown): void {
  if (!res.writableEnded) res.write(`${JSON.stringify(v)}\n`);
}

function json(res: http.ServerResponse, code: number, v: unknown): void {
  const body = JSON.stringify(v);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** a metav1.Status error body, as the real server sends it */
function status(res: http.ServerResponse, code: number, reason: string, message: string, details?: Record<string, unknown>): void {
  json(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code });
}

function parsePath(path: string): { type: ResourceType; namespace?: string; name?: string } | undefined {
  for (const t of TYPES) {
    if (!path.startsWith(`${t.prefix}/`)) continue;
    const rest = path.slice(t.prefix.length + 1).split('/');
    if (rest[0] === 'namespaces' && rest.length >= 3 && t.namespaced) {
      if (rest[2] !== t.plural || rest.length > 4) continue;
      return { type: t, namespace: rest[1], name: rest[3] };
    }
    if (rest[0] === t.plural && rest.length <= 2) return { type: t, name: rest[1] };
  }
  return undefined;
}

function and(a: Selector, b: Selector): Selector {
  return (o) => a(o) && b(o);
}

function fieldValue(o: KubeObject, path: string): string {
  let v: unknown = o;
  for (const p of path.split('.')) v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[p] : undefined;
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : '';
}

/** `a=b,c!=d`: the field labels the real server supports for the resource, else an error */
function fieldSelector(t: ResourceType, s: string): Selector {
  const terms = s.split(',').filter(Boolean).map((term) => {
    const m = /^([^=!]+)(==|=|!=)(.*)$/.exec(term);
    if (!m) throw new Error(`invalid field selector: "${term}"`);
    const field = m[1]!;
    if (field !== 'metadata.name' && field !== 'metadata.namespace' && !t.fields.includes(field)) {
      throw new Error(`field label not supported: ${field}`);
    }
    return { field, neg: m[2] === '!=', value: m[3]! };
  });
  return (o) => terms.every((x) => (fieldValue(o, x.field) === x.value) !== x.neg);
}

/** equality-based label selectors: `a=b,c!=d,e` */
function labelSelector(s: string): Selector {
  const terms = s.split(',').filter(Boolean).map((term) => {
    const m = /^([^=!]+)(?:(==|=|!=)(.*))?$/.exec(term);
    if (!m) throw new Error(`unable to parse requirement: "${term}"`);
    return { label: m[1]!, op: m[2], value: m[3] ?? '' };
  });
  return (o) =>
    terms.every((x) => {
      const v = o.metadata.labels?.[x.label];
      if (x.op === undefined) return v !== undefined;
      return x.op === '!=' ? v !== x.value : v === x.value;
    });
}
