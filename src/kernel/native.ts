// The only place that loads a .node file: the libbpf addon built from native/.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { KernelError } from './errors.js';

declare const handleBrand: unique symbol;
export type NativeHandle = { readonly [handleBrand]: true };

export interface NativeCounters {
  kernel: number[];
  handoffDroppedBytes: number;
  batches: number;
}

export interface NativeAddon {
  open(): NativeHandle;
  setRodata(
    h: NativeHandle,
    v: Partial<Record<'selfTgid' | 'captureSize' | 'wakeupBytes' | 'filterPids' | 'filterCgroups' | 'summarize', number>>,
  ): void;
  setMapSize(h: NativeHandle, map: string, entries: number): void;
  load(h: NativeHandle): void;
  programs(h: NativeHandle): { name: string; section: string }[];
  attach(h: NativeHandle, program: string): void;
  /** a uprobe (or uretprobe) of `program` on a file at an offset or a symbol; pid -1: all processes. Returns a link id */
  attachUprobe(h: NativeHandle, program: string, path: string, target: number | string, retprobe: boolean, pid: number, cookie?: number): number;
  /** false when no such link */
  detachUprobe(h: NativeHandle, link: number): boolean;
  /** destroys the links on a worker thread; done(ms) on the JS thread once all are gone. Returns how many were attached */
  detachUprobesAsync(h: NativeHandle, links: number[], done: (ms: number) => void): number;
  /** [batches handed to JS, CLOCK_MONOTONIC ns of the reader's last round that found nothing] */
  drained(h: NativeHandle): [number, number];
  elfSymbols(path: string, names: string[]): NativeElfSymbols;
  /**
   * The reader fills the slot buffers in turn and calls onBatch(slotIndex, length); JS
   * gives each slot back with release(). Its final drain at stop comes as onBatch(buffer).
   */
  start(
    h: NativeHandle,
    onBatch: (slotOrBatch: number | Buffer, length?: number) => void,
    pollMs: number,
    batchBytes: number,
    slots: Buffer[],
  ): void;
  release(h: NativeHandle, slot: number): void;
  stop(h: NativeHandle): void;
  counters(h: NativeHandle): NativeCounters;
  mapCount(h: NativeHandle, map: string): number;
  mapUpdate(h: NativeHandle, map: string, key: Buffer, value: Buffer): void;
  /** fills value; false when the key is absent */
  mapLookup(h: NativeHandle, map: string, key: Buffer, value: Buffer): boolean;
  /** false when the key was absent */
  mapDelete(h: NativeHandle, map: string, key: Buffer): boolean;
  close(h: NativeHandle): void;
  clockOffset(): bigint;
  monotonicNow(): bigint;
  counterCount: number;
  /** capstone, x86-64: every instruction from the start of `code` (at `address`) until the end or the first undecodable bytes */
  x86Instructions(code: Buffer, address: number): { decoded: number; offsets: number[]; sizes: number[]; mnemonics: string[]; operands: string[] };
  /** libdw: the named structs found at the top level of the file's DWARF; null when it has none */
  dwarfStructs(path: string, names: string[]): Record<string, { size: number; members: { name: string; offset: number; type: string }[] }> | null;
}

export interface NativeElfSymbols {
  error?: string;
  elf: boolean;
  symtab: boolean;
  dynsym: boolean;
  symbols: Record<string, { offset: number; address: number; size: number }>;
}

/** errors thrown by the addon carry the libbpf stage, errno and log */
export interface NativeError extends Error {
  errno?: number;
  stage?: string;
  libbpfLog?: string;
}

let cached: NativeAddon | undefined;

export function nativeAddon(): NativeAddon {
  if (cached) return cached;
  const path = fileURLToPath(new URL('../../../native/build/Release/osprey_native.node', import.meta.url));
  if (!existsSync(path)) {
    throw new KernelError('native-missing', `the native addon is not built (${path})`, 'run `make build`');
  }
  const require = createRequire(import.meta.url);
  cached = require(path) as NativeAddon;
  return cached;
}
