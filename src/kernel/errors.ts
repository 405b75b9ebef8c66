// Errors a user can act on: what went wrong and how to fix it, in one line each.

export type KernelErrorCode =
  | 'not-linux'
  | 'no-privilege'
  | 'no-btf'
  | 'kernel-too-old'
  | 'no-tracefs'
  | 'tracepoint-missing'
  | 'load-failed'
  | 'attach-failed'
  | 'native-missing'
  | 'uprobe-failed';

export class KernelError extends Error {
  readonly code: KernelErrorCode;
  readonly hint: string;
  constructor(code: KernelErrorCode, message: string, hint: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KernelError';
    this.code = code;
    this.hint = hint;
  }
}
