// Low-cardinality routes for HTTP spans (secrets in paths and queries: ../redact.ts).
//
// routeOf('/users/123/orders/9f8a7c6e5d4b') === '/users/{id}/orders/{id}'
// A path segment becomes {id} when it looks like data rather than a name:
// - numbers and number-like values: digits with separators only (123, 2024-01-15, 10.0.0.1, 1.2.3)
// - UUIDs (8-4-4-4-12 hex)
// - hex hashes: >= 8 hex characters with at least one digit (9f8a7c6e5d4b, sha digests)
// - mixed letters and digits of >= 8 characters (ord_8f7H2k9x, INV-2024-0001, JWT-like tokens),
//   or with a run of >= 4 digits (item4567); short ones stay (v1, v2beta1, oauth2, sha256, h264)
// - long base64-ish tokens without digits: >= 16 characters of [A-Za-z0-9_-=] whose letters are
//   25%..75% upper case (camelCase words have few capitals, random tokens about half)
// - percent-encoded segments (user data: names, search terms) and any segment over 48 characters
// - version-like segments (v1, v2beta1, v1alpha1) always stay
// A file extension (one dot, 1-5 letters) is kept: /files/123.json -> /files/{id}.json.
// Empty segments and a trailing slash are kept as they are; '/' stays '/'.

export const ID = '{id}';

const MAX_SEGMENT = 48;
const MAX_ROUTE = 512;

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isHexLetter(c: number): boolean {
  return (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}
function isUpper(c: number): boolean {
  return c >= 65 && c <= 90;
}
function isLower(c: number): boolean {
  return c >= 97 && c <= 122;
}

/** v1, v2, v1beta1, v2alpha3, v10rc1 */
function isVersion(s: string): boolean {
  const n = s.length;
  if (n < 2 || n > 12 || (s.charCodeAt(0) !== 118 && s.charCodeAt(0) !== 86)) return false;
  let i = 1;
  while (i < n && isDigit(s.charCodeAt(i))) i++;
  if (i === 1) return false;
  if (i === n) return true;
  const rest = s.slice(i).toLowerCase();
  return /^(alpha|beta|rc)\d*$/.test(rest);
}

function isUuid(s: string): boolean {
  if (s.length !== 36) return false;
  for (let i = 0; i < 36; i++) {
    const c = s.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45) return false;
    } else if (!isDigit(c) && !isHexLetter(c)) return false;
  }
  return true;
}

/** Does this path segment (no '/') look like an identifier? */
export function isIdSegment(seg: string): boolean {
  const n = seg.length;
  if (n === 0) return false;
  if (n > MAX_SEGMENT) return true;
  let digits = 0;
  let letters = 0;
  let upper = 0;
  let hex = 0;
  let other = 0;
  let run = 0;
  let maxRun = 0;
  let b64 = 0; // [A-Za-z0-9_-=]
  for (let i = 0; i < n; i++) {
    const c = seg.charCodeAt(i);
    if (isDigit(c)) {
      digits++;
      hex++;
      b64++;
      run++;
      if (run > maxRun) maxRun = run;
      continue;
    }
    run = 0;
    if (isUpper(c) || isLower(c)) {
      letters++;
      b64++;
      if (isUpper(c)) upper++;
      if (isHexLetter(c)) hex++;
    } else if (c === 37 /* % */) {
      return true;
    } else if (c === 45 || c === 95 || c === 61) {
      b64++; // - _ =
    } else if (c !== 46 && c !== 58 && c !== 126 && c !== 44 && c !== 43) {
      // anything but the separators . : ~ , +
      other++;
    }
  }
  if (digits === n) return true; // 123
  if (digits > 0 && letters === 0 && other === 0) return true; // 2024-01-15, 10.0.0.1, 1.2.3
  if (letters > 0 && isVersion(seg)) return false;
  if (isUuid(seg)) return true;
  if (hex === n && n >= 8 && digits > 0) return true; // 9f8a7c6e5d4b
  if (digits > 0 && letters > 0 && (n >= 8 || maxRun >= 4)) return true;
  if (b64 === n && n >= 16 && letters > 0) {
    const r = upper / letters;
    if (r >= 0.25 && r <= 0.75) return true;
  }
  return false;
}

function routeSegment(seg: string): string {
  // keep a short alphabetic extension: 123.json -> {id}.json
  const dot = seg.lastIndexOf('.');
  if (dot > 0 && seg.length - dot - 1 >= 1 && seg.length - dot - 1 <= 5 && seg.indexOf('.') === dot) {
    const ext = seg.slice(dot + 1);
    let alpha = true;
    for (let i = 0; i < ext.length; i++) {
      const c = ext.charCodeAt(i);
      if (!isUpper(c) && !isLower(c)) alpha = false;
    }
    if (alpha && isIdSegment(seg.slice(0, dot))) return `${ID}.${ext}`;
  }
  return isIdSegment(seg) ? ID : seg;
}

/** URL path (a query or fragment, if present, is dropped) to a low-cardinality route. */
export function routeOf(path: string): string {
  let p = path;
  const q = p.indexOf('?');
  if (q >= 0) p = p.slice(0, q);
  const h = p.indexOf('#');
  if (h >= 0) p = p.slice(0, h);
  // absolute-form request targets: http://host:port/path -> /path
  if (p.length > 0 && p.charCodeAt(0) !== 47) {
    const scheme = p.indexOf('://');
    if (scheme > 0) {
      const slash = p.indexOf('/', scheme + 3);
      p = slash < 0 ? '/' : p.slice(slash);
    } else if (p === '*') {
      return '*';
    } else {
      p = `/${p}`;
    }
  }
  if (p.length <= 1) return '/';
  const segs = p.split('/');
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i];
    if (s !== undefined && s.length > 0) segs[i] = routeSegment(s);
  }
  const r = segs.join('/');
  return r.length > MAX_ROUTE ? r.slice(0, MAX_ROUTE) : r;
}
