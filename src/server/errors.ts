// Errors that become HTTP responses in one place (server.ts onError).

/** why a request was refused; each is a label value of osprey_http_bad_requests_total */
export const BAD_REQUEST_REASONS = [
  /** no endpoint at this path (404) */
  'unknown_path',
  /** the path exists, the method does not (405) */
  'method_not_allowed',
  /** a query parameter or path segment that does not parse (400) */
  'bad_parameter',
  /** a %-escape that is not %XX or does not decode to UTF-8 (400) */
  'bad_encoding',
  /** an endpoint of the design that is not built yet (501) */
  'not_implemented',
  /** request line and headers over the HTTP parser's limit (431) */
  'too_large',
  /** not HTTP/1 the parser can read (400) */
  'malformed_http',
] as const;
export type BadRequestReason = (typeof BAD_REQUEST_REASONS)[number];

export class HttpError extends Error {
  readonly status: number;
  readonly hint: string | undefined;
  /** counted as a bad request under this reason; undefined: not a client mistake (a trace not found) */
  readonly reason: BadRequestReason | undefined;
  constructor(status: number, message: string, hint?: string, options?: { cause?: unknown; reason?: BadRequestReason }) {
    super(message, options);
    this.name = 'HttpError';
    this.status = status;
    this.hint = hint;
    this.reason = options?.reason ?? defaultReason(status);
  }
}

function defaultReason(status: number): BadRequestReason | undefined {
  switch (status) {
    case 400:
      return 'bad_parameter';
    case 405:
      return 'method_not_allowed';
    case 431:
      return 'too_large';
    case 501:
      return 'not_implemented';
    default:
      return undefined;
  }
}

/** a 400 for a parameter that does not parse */
export function badParam(message: string, hint?: string): HttpError {
  return new HttpError(400, message, hint);
}
