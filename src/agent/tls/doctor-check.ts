// `osprey doctor`'s TLS check: one scan of the running processes with the probes really
// attached (then detached): which files carry an OpenSSL API, which could not be probed.
import { Capture } from '../../kernel/index.js';
import type { Check } from '../../kernel/doctor.js';
import { opensslFamily } from './openssl.js';
import { UprobeWatcher, type WatchedFile } from './uprobe-watcher.js';

export async function tlsCheck(): Promise<Check> {
  let cap: Capture | undefined;
  let w: UprobeWatcher | undefined;
  try {
    cap = Capture.open({ onBatch: () => {} });
    w = new UprobeWatcher(cap, { families: [opensslFamily] });
    w.scan();
    return tlsCheckFrom(w.files());
  } catch (err) {
    return { id: 'tls-uprobes', status: 'warn', detail: `could not scan for TLS libraries: ${(err as Error).message}`, fix: 'HTTPS is not traced; plain HTTP is' };
  } finally {
    w?.stop();
    await cap?.close();
  }
}

/** the check's verdict from the watched files (also what `osprey status` lists) */
export function tlsCheckFrom(files: WatchedFile[]): Check {
  const ok = files.filter((f) => f.status === 'attached');
  const bad = files.filter((f) => f.status !== 'attached');
  const list = (fs: WatchedFile[]) => fs.map((f) => `${f.path}${f.reason ? ` (${f.reason})` : ''}`).join(', ');
  const detail = `${ok.length} file(s) with OpenSSL probes${ok.length ? `: ${list(ok)}` : ' (no running process maps libssl or carries OpenSSL)'}`;
  if (!bad.length) return { id: 'tls-uprobes', status: 'pass', detail };
  return {
    id: 'tls-uprobes',
    status: 'warn',
    detail: `${detail}; not probed: ${list(bad)}`,
    fix: 'HTTPS of the processes using those files is not traced (stripped binaries carry no symbols to probe; over-limit: raise the bound)',
  };
}
