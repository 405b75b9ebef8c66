/**
 * Why a query was refused:
 * - 'syntax': not TraceQL (the grammar rejects it);
 * - 'unsupported': valid TraceQL that Osprey does not evaluate yet (pipelines, structural operators...);
 * - 'invalid': well-formed but meaningless (`status = 5`, `duration =~ "x"`, a bad duration...).
 */
export type TraceQLErrorKind = 'syntax' | 'unsupported' | 'invalid';

/** The only error `parseTraceQL` throws. `pos` is a 0-based offset into the query text. */
export class TraceQLError extends Error {
  override readonly name = 'TraceQLError';
  readonly kind: TraceQLErrorKind;
  readonly pos: number;
  /** the message without the trailing " at <pos>" */
  readonly detail: string;

  constructor(kind: TraceQLErrorKind, detail: string, pos: number) {
    super(`${detail} at ${pos}`);
    this.kind = kind;
    this.pos = pos;
    this.detail = detail;
  }
}
