// The request heads the kernel summarises (bpf/lib/http1x.h: a HEAD hint or an exchange record
// carries a request's whole head), read in one pass for what a span and the linker take from
// them: method, target, version, Host, traceparent, User-Agent and X-Forwarded-For. No header
// object and no string for a header nobody reads.
//
// The answer is the one Http1Parser.requestHead gives (src/agent/protocols/http1-head.test.ts
// holds the two equal on generated and mutated heads): this reader takes only the plain,
// well-formed heads nearly every request has, and says "not plain" for anything else (a bad
// start line or header, a folded line, a repeated kept header, an over-long value), where the
// caller asks the full parser, which decides as it always did.
import { indexOfCrlf, isMethodChar, keptName, latin1String, MAX_HEADER_VALUE, MAX_TARGET, parseContentLengthBytes } from './http1.js';

const SP = 32;
const HT = 9;
const COLON = 58;

/** What a span and the linker take from a request head (undefined: the header was absent). */
export interface RequestHeadFields {
  method: string;
  target: string;
  version: string;
  host: string | undefined;
  traceparent: string | undefined;
  userAgent: string | undefined;
  forwardedFor: string | undefined;
}

export function newRequestHeadFields(): RequestHeadFields {
  return { method: '', target: '', version: '', host: undefined, traceparent: undefined, userAgent: undefined, forwardedFor: undefined };
}

const latin1 = latin1String;

/** the method buf[at, at + len) spells: the common ones as constants (no string made per request) */
function methodAt(buf: Buffer, at: number, len: number): string {
  const c0 = buf[at];
  if (len === 3 && c0 === 71 && buf[at + 1] === 69 && buf[at + 2] === 84) return 'GET';
  if (len === 4 && c0 === 80 && buf[at + 1] === 79 && buf[at + 2] === 83 && buf[at + 3] === 84) return 'POST';
  if (len === 3 && c0 === 80 && buf[at + 1] === 85 && buf[at + 2] === 84) return 'PUT';
  if (len === 4 && c0 === 72 && buf[at + 1] === 69 && buf[at + 2] === 65 && buf[at + 3] === 68) return 'HEAD';
  return latin1(buf, at, at + len);
}

/** "HTTP/1.1" or "HTTP/1.0" at buf[at, at + 8): the minor digit's char code, else -1 */
function versionAt(buf: Buffer, at: number): number {
  if (buf[at] !== 72 || buf[at + 1] !== 84 || buf[at + 2] !== 84 || buf[at + 3] !== 80 || buf[at + 4] !== 47 || buf[at + 5] !== 49 || buf[at + 6] !== 46) return -1;
  const minor = buf[at + 7]!;
  return minor === 48 || minor === 49 ? minor : -1;
}

/**
 * Reads the request head in buf[start, start + headLen) (headLen: up to and including its
 * CRLFCRLF; `limit`: where the captured bytes end) into `out`. False when the head is not
 * plain (see the head of this file): then nothing is known, and Http1Parser.requestHead must
 * decide.
 */
export function readRequestHead(buf: Buffer, start: number, headLen: number, limit: number, out: RequestHeadFields): boolean {
  if (headLen < 4 || start + headLen > limit) return false;
  // the bounds Http1Parser.requestHead parses: the block without its final CRLF
  const end = start + headLen - 2;
  const eol = indexOfCrlf(buf, start, end);
  if (eol < 0) return false;
  let sp1 = start;
  while (sp1 < eol && sp1 - start <= 20 && isMethodChar(buf[sp1])) sp1++;
  if (sp1 === start || sp1 - start > 20 || buf[sp1] !== SP) return false;
  // the target runs to the line's last space, the version follows it
  let sp2 = eol - 1;
  while (sp2 > sp1 && buf[sp2] !== SP) sp2--;
  if (sp2 <= sp1 + 1 || eol - sp2 !== 9) return false;
  const minor = versionAt(buf, sp2 + 1);
  if (minor < 0) return false;
  let host: string | undefined;
  let traceparent: string | undefined;
  let userAgent: string | undefined;
  let forwardedFor: string | undefined;
  let cl = -1;
  let pos = eol + 2;
  while (pos < end) {
    const e = indexOfCrlf(buf, pos, end);
    if (e < 0 || e === pos) break;
    let colon = pos;
    while (colon < e && buf[colon] !== COLON) colon++;
    // a folded line or no name: the full parser decides
    if (colon === e || colon === pos) return false;
    const name = keptName(buf, pos, colon - pos);
    if (name === 'host' || name === 'traceparent' || name === 'user-agent' || name === 'x-forwarded-for' || name === 'content-length') {
      let a = colon + 1;
      let b = e;
      while (a < b && (buf[a] === SP || buf[a] === HT)) a++;
      while (b > a && (buf[b - 1] === SP || buf[b - 1] === HT)) b--;
      if (b - a > MAX_HEADER_VALUE) return false;
      if (name === 'content-length') {
        // read from the bytes (no string); a bad one makes the head unparsed, which the full parser says
        const n = parseContentLengthBytes(buf, a, b);
        if (n < 0 || (cl >= 0 && cl !== n)) return false;
        cl = n;
      } else {
        const value = latin1(buf, a, b);
        switch (name) {
          case 'host':
            if (host !== undefined) return false;
            host = value;
            break;
          case 'traceparent':
            if (traceparent !== undefined) return false;
            traceparent = value;
            break;
          case 'user-agent':
            if (userAgent !== undefined) return false;
            userAgent = value;
            break;
          default:
            if (forwardedFor !== undefined) return false;
            forwardedFor = value;
        }
      }
    }
    pos = e + 2;
  }
  out.method = methodAt(buf, start, sp1 - start);
  out.target = latin1(buf, sp1 + 1, Math.min(sp2, sp1 + 1 + MAX_TARGET));
  out.version = minor === 49 ? '1.1' : '1.0';
  out.host = host;
  out.traceparent = traceparent;
  out.userAgent = userAgent;
  out.forwardedFor = forwardedFor;
  return true;
}

/** the fields of a parsed head (Http1Parser.requestHead's answer) */
export function fieldsFromHeaders(head: { method: string; target: string; version: string; headers: Record<string, string> }, out: RequestHeadFields): void {
  out.method = head.method;
  out.target = head.target;
  out.version = head.version;
  out.host = head.headers.host;
  out.traceparent = head.headers.traceparent;
  out.userAgent = head.headers['user-agent'];
  out.forwardedFor = head.headers['x-forwarded-for'];
}

/**
 * Whether bytes [start, start + len) of `view` are those of prevView[0, len): four at a time
 * (a request head is ~100 bytes: a native memcmp would cost more to call than this takes)
 */
export function sameBytes(view: DataView, start: number, prevView: DataView, len: number): boolean {
  let i = 0;
  for (; i + 4 <= len; i += 4) if (view.getInt32(start + i, true) !== prevView.getInt32(i, true)) return false;
  for (; i < len; i++) if (view.getUint8(start + i) !== prevView.getUint8(i)) return false;
  return true;
}
