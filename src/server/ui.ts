// Serving the built web UI (web/dist, made by `make build`): files with their content
// type; hashed assets (/assets/*) cached for a year, index.html revalidated every time;
// the views' paths (UI_PATHS) answered with index.html so deep links such as /trace/<id>
// load the app (which then reads its state from the URL).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HttpError } from './errors.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
};

/** the package's web/dist when it holds a build (dist/src/server/ui.js is three levels down) */
export function defaultUiDir(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const cand = join(dir, 'web', 'dist');
    if (existsSync(join(cand, 'index.html'))) return cand;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return undefined;
}

export interface StaticReply {
  type: string;
  headers: Record<string, string>;
  body: Buffer | string;
}

/**
 * The UI's files. Read once and kept (the build is ~1 MB): a request costs no disk access,
 * and a rebuild needs a restart, as for the server's own code.
 */
export class UiFiles {
  private readonly cache = new Map<string, Buffer>();
  private readonly root: string;
  constructor(dir: string) {
    this.root = resolve(dir);
  }

  /** `path` is the request path, still %-encoded */
  serve(path: string): StaticReply {
    let rel: string;
    try {
      rel = decodeURIComponent(path);
    } catch {
      rel = '/';
    }
    const file = normalize(join(this.root, rel));
    const inside = file.startsWith(this.root + sep);
    if (inside && extname(file) && !rel.endsWith('/index.html')) {
      const body = this.read(file);
      if (body) {
        const hashed = rel.startsWith('/assets/');
        return {
          type: TYPES[extname(file)] ?? 'application/octet-stream',
          headers: { 'cache-control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache', 'x-content-type-options': 'nosniff' },
          body,
        };
      }
      // a missing asset is a 404, not the app: a stale page asking for an old hash must fail visibly
      if (rel.startsWith('/assets/')) throw new HttpError(404, `no such file: ${rel.slice(0, 100)}`, 'reload the page: the UI was rebuilt', { reason: 'unknown_path' });
    }
    const index = this.read(join(this.root, 'index.html'));
    if (!index) throw new HttpError(404, 'the web UI is not built', 'run make build');
    return { type: TYPES['.html']!, headers: { 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' }, body: index };
  }

  private read(file: string): Buffer | undefined {
    const hit = this.cache.get(file);
    if (hit) return hit;
    try {
      if (!statSync(file).isFile()) return undefined;
      const b = readFileSync(file);
      this.cache.set(file, b);
      return b;
    } catch {
      return undefined;
    }
  }
}

/**
 * GET paths the UI answers: its views (deep links load the app, which reads its state from
 * the URL) and its files. Named one by one so a mistyped path stays a 404, as an API user
 * expects.
 */
export const UI_PATHS = /^\/(?:|search|services|map|trace\/[^/]+|assets\/[^/]+|favicon\.svg)$/;
