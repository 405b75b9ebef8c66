export { UprobeWatcher, type UprobeAttacher, type UprobeWatcherOptions, type UprobeWatcherCounters, type WatchedFile, type FileStatus } from './uprobe-watcher.js';
export { opensslFamily } from './openssl.js';
export type { ProbeFamily, ProbeSpec, MappedFile, NoProbes } from './probe-family.js';
