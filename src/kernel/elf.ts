// Function symbols of ELF files (through the addon's libelf, the library libbpf itself reads
// ELF with): where uprobes go, and whether a file carries a library's API at all.
import { nativeAddon } from './native.js';

export interface ElfFunction {
  /** offset in the file: what a uprobe is attached at */
  offset: number;
  /** st_value */
  address: number;
  size: number;
}

export interface ElfSymbols {
  /** the file could not be read as ELF (why), or undefined */
  error: string | undefined;
  /** has a .symtab (not stripped) */
  symtab: boolean;
  /** has a .dynsym (exported symbols) */
  dynsym: boolean;
  /** the functions asked for that the file defines (in .symtab or .dynsym) */
  functions: Map<string, ElfFunction>;
}

/** looks `names` up in the file's symbol tables; never throws for a bad file (see `error`) */
export function elfSymbols(path: string, names: readonly string[]): ElfSymbols {
  const r = nativeAddon().elfSymbols(path, [...names]);
  return {
    error: r.error ?? (r.elf ? undefined : 'not an ELF file'),
    symtab: r.symtab,
    dynsym: r.dynsym,
    functions: new Map(Object.entries(r.symbols)),
  };
}
