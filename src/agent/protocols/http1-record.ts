// Exchanges the kernel summarised (bpf/lib/http1x.h, op 'exchange'): one record carries what
// the HTTP/1 parser would have derived from the exchange's calls, so the record becomes the
// very Exchange the parser would have returned - same times, sizes, threads, status and
// request head - without a call of it reaching user space.
import { Role, type KernelEvent } from '../../kernel/index.js';
import { Http1Parser } from './http1.js';
import type { Exchange, HttpRequest } from './protocol.js';

type RequestHead = Pick<HttpRequest, 'method' | 'target' | 'version' | 'headers'>;

/**
 * A summarised request: its parsed head and what the kernel measured of its calls. (Fields
 * are copied one by one: an object spread here cost a third of the records' processing.)
 */
function summarisedRequest(head: RequestHead, tsStart: number, tsEnd: number, size: number, tid: number, headLen: number, rtx: number): HttpRequest {
  return {
    method: head.method,
    target: head.target,
    version: head.version,
    headers: head.headers,
    tsStart,
    tsEnd,
    size,
    tid,
    rtx,
    bodySize: size - headLen,
  };
}

/**
 * The Exchange of an exchange record, or undefined when its request head does not parse.
 * (The agent builds its span straight from the record, see agent.ts; this is the equivalence
 * oracle's view of it, test/summary-oracle.test.ts.)
 */
export function exchangeFromRecord(e: KernelEvent): Exchange | undefined {
  const x = e.exchange;
  const head = Http1Parser.requestHead(e.data, x.reqHeadLen);
  if (!head) return undefined;
  return {
    protocol: 'http1',
    role: e.role === Role.server ? 'server' : 'client',
    request: summarisedRequest(head, e.ts, x.reqEnd, e.bytes, e.tid, x.reqHeadLen, e.rtx),
    response: {
      status: x.status,
      version: x.respMinor === 0 ? '1.0' : '1.1',
      headers: {},
      tsStart: x.respTs,
      tsEnd: e.tsEnd,
      size: x.respBytes,
      tid: x.respTid,
      bodySize: x.respBytes - x.respHeadLen,
    },
  };
}
