// Errors that become HTTP responses in one place (server.ts onError).
export class HttpError extends Error {
  readonly status: number;
  readonly hint: string | undefined;
  constructor(status: number, message: string, hint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HttpError';
    this.status = status;
    this.hint = hint;
  }
}
