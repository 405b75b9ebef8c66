// OpenSSL-compatible libraries: libssl.so* mapped by a process, and executables that carry
// OpenSSL (or BoringSSL) themselves with its symbols (Node's official builds export them).
// The programs are in bpf/lib/openssl.h.
import { basename } from 'node:path';
import { elfSymbols } from '../../kernel/index.js';
import type { MappedFile, NoProbes, ProbeFamily, ProbeSpec } from './probe-family.js';

/** function -> its entry program; every one but SSL_free also gets the shared uretprobe */
const ENTRY: Record<string, string> = {
  SSL_read: 'osp_ssl_read',
  SSL_write: 'osp_ssl_write',
  SSL_read_ex: 'osp_ssl_read_ex',
  SSL_write_ex: 'osp_ssl_write_ex',
  SSL_do_handshake: 'osp_ssl_do_handshake',
  SSL_free: 'osp_ssl_free',
};
const RETURN_PROGRAM = 'osp_ssl_ret';
const NAMES = Object.keys(ENTRY);

export const opensslFamily: ProbeFamily = {
  name: 'openssl',
  candidate(file: MappedFile): boolean {
    return file.exe || basename(file.path).startsWith('libssl.so');
  },
  plan(file: MappedFile): ProbeSpec[] | NoProbes {
    const syms = elfSymbols(file.openPath, NAMES);
    const lib = !file.exe;
    if (syms.error) return { reason: syms.error, level: lib ? 'error' : 'none' };
    const f = syms.functions;
    if (!f.has('SSL_read') || !f.has('SSL_write')) {
      // an executable without OpenSSL is the common case; a libssl without it is not, nor is a
      // binary stripped of every symbol table (it may carry OpenSSL: we cannot tell where)
      if (lib) return { reason: 'no SSL_read/SSL_write symbols', level: 'error' };
      if (!syms.symtab && !syms.dynsym) return { reason: 'stripped: no symbol table', level: 'stripped' };
      return { reason: 'no OpenSSL symbols', level: 'none' };
    }
    const out: ProbeSpec[] = [];
    for (const [name, fn] of f) {
      out.push({ program: ENTRY[name]!, offset: fn.offset, retprobe: false, label: name });
      if (name !== 'SSL_free') out.push({ program: RETURN_PROGRAM, offset: fn.offset, retprobe: true, label: `${name} return` });
    }
    return out;
  },
};
