// A family of uprobes: which mapped files may carry a library's API, and which programs of
// the loaded object go where in such a file. The OpenSSL family (openssl.ts) is one; a
// runtime's (Go crypto/tls) is another. The watcher (uprobe-watcher.ts) does the rest:
// finding files, attaching once per file, detaching when no process maps it.

/** one uprobe or uretprobe of a file */
export interface ProbeSpec {
  /** a `uprobe`/`uretprobe` program of bpf/capture.bpf.c */
  program: string;
  /** file offset of the instruction (a function's entry, or any instruction in it) */
  offset: number;
  retprobe: boolean;
  /** what it is, for status lines ("SSL_read", "SSL_read return") */
  label: string;
  /** what bpf_get_attach_cookie() gives the program (a family's per-file data, e.g. Go's go_tls_bins slot) */
  cookie?: number;
}

/** a file mapped executable by some process */
export interface MappedFile {
  /** the path as the process sees it (in its mount namespace) */
  path: string;
  /** the same file as this process can open it (/proc/<pid>/root/...) */
  openPath: string;
  /** it is the process's executable (not a shared library) */
  exe: boolean;
}

/**
 * A file has no probes of this family: why, and how much that matters. 'none': it does not
 * carry the API (most executables): counted only. 'stripped': it has no symbol table, so it
 * may carry the API where nobody can find it: listed and counted. 'error': it should have had
 * them (a libssl without SSL_read, an unreadable file): listed and counted.
 */
export interface NoProbes {
  reason: string;
  level: 'none' | 'stripped' | 'error';
  /** it would have probes but the family is out of slots (its own bound): the watcher may make room */
  full?: boolean;
}

export interface ProbeFamily {
  readonly name: string;
  /** cheap, from the path alone: is the file worth reading? */
  candidate(file: MappedFile): boolean;
  /** the probes for the file (read once per file: dev + inode) */
  plan(file: MappedFile): ProbeSpec[] | NoProbes;
  /** the probes of a plan are off the file (detached, or their attach failed): free what plan() took */
  released?(plan: readonly ProbeSpec[]): void;
  /**
   * a process maps a file whose probes are attached (called once per process and file, at the
   * scan that first sees it so): for families that keep per-process state in the kernel
   */
  processMapped?(pid: number, plan: readonly ProbeSpec[]): void;
  /** that process no longer maps the file (it exited, or the probes came off) */
  processGone?(pid: number, plan: readonly ProbeSpec[]): void;
}
