// Secrets are never stored: the one place that decides what a secret looks like in the text
// Osprey keeps from a process or a request — a command line (/proc/<pid>/cmdline), a request
// target (url.path, url.query, url.full), a Host or User-Agent value — and replaces it with the
// fixed marker REDACTED. Never with a hash: a hash of a short password or a guessable token is
// reversed by trying candidates, and even a strong one tells a reader which processes share a
// credential. Redaction happens before a value becomes an attribute, so nothing downstream (the
// store, tag values, search, metrics, OTLP export) ever sees the secret.
//
// The rules, each shaped against the false positives noted next to it:
// - Names (isSecretName): a query parameter, a header, a flag, an environment variable or a
//   `name=value` pair names a secret when one of its words does (see SECRET_PART / SECRET_WORD /
//   SECRET_COMPOUND) and it does not name something *about* a secret (--password-file,
//   SESSION_TIMEOUT, --no-password: see NOT_THE_VALUE_*).
// - URLs (redactUrl): `user:password@` keeps the user (a name, useful to tell which account
//   calls, and no credential by itself) and drops the password; a userinfo without a password
//   (`https://<token>@github.com`, `user:` as Stripe keys are passed) is itself the credential
//   and goes whole. Secret-named query, fragment and `;path` parameters lose their values.
// - Command lines (redactArgv): secret-named flags lose their value (`--password=x`,
//   `--password x`, Go-style `-token x`, Java `-Dpassword=x`), header-style arguments with a
//   secret header name lose theirs (`-H 'Authorization: …'`, `--header=Cookie: …`, httpie's
//   `Authorization:…`), env-style assignments too (`PGPASSWORD=x`, `FOO_TOKEN=x`), and a few
//   tool-specific spellings: `-pX`/`-p X` for mysql-style tools, `-u user:pass` and
//   `--cert file:pass` for curl, `--user user:pass` for any tool. Every other argument (the
//   executable, `--port 5432`, `-p 8080`) is kept; URLs inside any argument follow the URL rules.
// - Free text (redactText, used for argument values and the User-Agent): the above wherever
//   the shape is unambiguous, plus `Bearer <token>` / `Basic <base64 of user:pass>`.

import { basename } from 'node:path';

export const REDACTED = 'REDACTED';

// --- names ------------------------------------------------------------------------------

/** Inside any word: these strings are (almost) never part of an innocent word. */
const SECRET_PART = /token|secret|passw(?:or)?d|passphrase|passcode|credential|apikey|sess(?:ion)?id|signature|cookie|bearer|jwt/;

/** Whole words only: too short or too common to look for inside other words
 *  (key in keyboard/monkey, sig in signal/design, pass in compass/passenger, pw in pwm). */
const SECRET_WORD = new Set(['key', 'keys', 'auth', 'authorization', 'authentication', 'authn', 'sig', 'session', 'pass', 'pwd', 'pw', 'csrf', 'xsrf']);

/** Written as one word: a secret 'key' only after a known qualifier (accesskey, privkey,
 *  accesskeyid, not hotkey/turkey), anything ending in 'auth' (oauth, basicauth; author and
 *  authority don't end in it) or in 'session' (jsession, phpsession). */
const SECRET_COMPOUND =
  /^(?:access|secret|private|priv|signing|master|client|app|auth|license|encryption|subscription|consumer|shared|account|session|ssh)keys?(?:id)?$|^[a-z]*auth$|^[a-z]*session$/;

/** A last word that makes the name describe a secret rather than hold it: --password-file PATH,
 *  DB_PASSWORD_FILE (Docker's secrets convention), SESSION_TIMEOUT, token_type=bearer,
 *  --auth-url URL (a URL value still goes through the URL rules), --cookie-jar FILE. */
const NOT_THE_VALUE_LAST = new Set([
  'file', 'files', 'path', 'dir', 'fd', 'jar', 'url', 'uri', 'endpoint', 'host', 'port', 'timeout', 'ttl',
  'expiry', 'expires', 'type', 'mode', 'name', 'length', 'len', 'size', 'count', 'stdin', 'prompt', 'env', 'var',
]);

/** A first word that makes the flag a switch without a value: --no-password, --ask-pass,
 *  --skip-auth; the argument after it is not its value. Not 'enable' (Cisco's enable password
 *  is a secret) nor 'require': a switch wrongly taken for a secret only costs one argument. */
const NOT_THE_VALUE_FIRST = new Set(['no', 'ask', 'skip', 'disable', 'without', 'prompt']);

/** words of a name: separators split (api_key, X-Api-Key, db.password), then camelCase and
 *  acronyms (apiKey, XApiKey, AWSAccessKeyId), all lower case */
function wordsOf(parts: readonly string[]): string[] {
  const out: string[] = [];
  for (const part of parts) for (const w of part.split(/(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])/)) out.push(w.toLowerCase());
  return out;
}

function secretWord(w: string): boolean {
  return SECRET_WORD.has(w) || SECRET_PART.test(w) || SECRET_COMPOUND.test(w);
}

/** Does this name (query parameter, header, flag without dashes, variable) name a secret? */
export function isSecretName(name: string): boolean {
  const parts = name.split(/[^A-Za-z0-9]+/).filter((p) => p.length > 0);
  const words = wordsOf(parts);
  if (words.length === 0) return false;
  if (words.length > 1 && (NOT_THE_VALUE_LAST.has(words[words.length - 1]!) || NOT_THE_VALUE_FIRST.has(words[0]!))) return false;
  // both splits: camelCase splitting alone would miss PassWord (pass + word)
  return words.some(secretWord) || parts.some((p) => secretWord(p.toLowerCase()));
}

function decodeName(s: string): string {
  if (s.indexOf('%') < 0 && s.indexOf('+') < 0) return s;
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

// --- URLs -------------------------------------------------------------------------------

/**
 * Replace the values of secret-named query parameters with REDACTED:
 * 'a=1&api_key=xyz' -> 'a=1&api_key=REDACTED'. Accepts the query with or without its
 * leading '?', keeps the order, the separators and parameters without a value; names are
 * matched percent-decoded (access%5Ftoken is access_token). Unchanged input is returned as is.
 */
export function redactQuery(query: string): string {
  if (query.length === 0) return query;
  let lead = '';
  let q = query;
  if (q.charCodeAt(0) === 63 /* ? */) {
    lead = '?';
    q = q.slice(1);
  }
  const parts = q.split('&');
  let changed = false;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const eq = part.indexOf('=');
    if (eq < 0 || eq === part.length - 1) continue; // no value to hide
    const name = part.slice(0, eq);
    if (isSecretName(decodeName(name))) {
      parts[i] = `${name}=${REDACTED}`;
      changed = true;
    }
  }
  return changed ? lead + parts.join('&') : query;
}

/** `;name=value` path parameters (Java's ;jsessionid=…) with a secret name lose their value */
export function redactPathParams(path: string): string {
  if (path.indexOf(';') < 0) return path;
  return path.replace(/;([^;/?#=]+)=([^;/?#]+)/g, (all, name: string) => (isSecretName(decodeName(name)) ? `;${name}=${REDACTED}` : all));
}

/** `user:password` -> `user:REDACTED`; a userinfo without a password is the credential itself */
export function redactUserinfo(userinfo: string): string {
  if (userinfo.length === 0) return userinfo;
  const c = userinfo.indexOf(':');
  return c > 0 && c < userinfo.length - 1 ? `${userinfo.slice(0, c)}:${REDACTED}` : REDACTED;
}

/** A Host header value without userinfo: server.address and url.full name a host, never an account. */
export function stripUserinfo(host: string): string {
  const at = host.lastIndexOf('@');
  return at < 0 ? host : host.slice(at + 1);
}

const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/** A URL with `scheme://`: userinfo, secret query, fragment and path parameters redacted. */
export function redactUrl(url: string): string {
  const s = SCHEME.exec(url);
  if (!s) return url;
  const rest = url.slice(s[0].length);
  // the authority ends at the first / ? #; when it has no '@' but a non-numeric "port", the
  // password had an unencoded '/' (curl accepts that): userinfo then ends at the last '@'
  // before the query
  let end = rest.search(/[/?#]/);
  if (end < 0) end = rest.length;
  let at = end > 0 ? rest.lastIndexOf('@', end - 1) : -1;
  if (at < 0 && rest[0] !== '[') {
    const colon = rest.indexOf(':');
    const stop = rest.search(/[?#]/);
    const at2 = rest.lastIndexOf('@', (stop < 0 ? rest.length : stop) - 1);
    if (colon >= 0 && colon < end && !/^\d*$/.test(rest.slice(colon + 1, end)) && at2 > end) {
      at = at2;
      end = rest.slice(at).search(/[/?#]/);
      end = end < 0 ? rest.length : at + end;
    }
  }
  const authority = at < 0 ? rest.slice(0, end) : `${redactUserinfo(rest.slice(0, at))}@${rest.slice(at + 1, end)}`;
  let tail = rest.slice(end);
  let fragment = '';
  const hash = tail.indexOf('#');
  if (hash >= 0) {
    // OAuth's implicit flow returns access_token in the fragment
    fragment = `#${redactQuery(tail.slice(hash + 1))}`;
    tail = tail.slice(0, hash);
  }
  const q = tail.indexOf('?');
  const path = redactPathParams(q < 0 ? tail : tail.slice(0, q));
  const query = q < 0 ? '' : `?${redactQuery(tail.slice(q + 1))}`;
  return `${s[0]}${authority}${path}${query}${fragment}`;
}

// --- free text --------------------------------------------------------------------------

/** a URL inside text: up to whitespace, a quote or an angle bracket */
const URL_IN_TEXT = /[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s"'<>`]+/g;
/** the whole text is NAME=value: an env assignment, a form field, the tail of -Dname=value
 *  (or httpie's query item NAME==value) */
const ASSIGNMENT = /^([A-Za-z_][\w.-]*)(==?)(.+)$/s;
/** the whole text is a header line (RFC 9110 token, then ':'); `scheme://` is not a header */
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):([ \t]*)(.+)$/s;
/** user:password@host[:port][/…] without a scheme (curl -x, proxies). A Docker image
 *  reference (name:tag@sha256:…) does not match: what follows '@' is not host[:port]. */
const SCHEMELESS_USERINFO = /^([^\s:/@]+:[^\s@/]*)@((?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+|\[[0-9A-Fa-f:.]+\])((?::\d+)?(?:\/\S*)?)$/;
/** name=value inside longer text (a libpq conninfo, a query in prose, a User-Agent comment).
 *  The value is quoted or ends at whitespace, '&' or ';' only: a password may well hold ')' or
 *  ',', and cutting it there would leave its tail behind (the price: "(token=x)" loses its ')'). */
const INLINE_PAIR = /(^|[\s&;,?(\[{"'])([A-Za-z_][\w.-]*)=('[^']*'|"[^"]*"|[^\s&;"']+)/g;
const ALREADY_REDACTED = new RegExp(`^${REDACTED}[).,!]*$`);
/** "name": "value" (a JSON body passed with curl -d) */
const JSON_PAIR = /"([^"\\]{1,64})"(\s*:\s*)"((?:[^"\\]|\\.)+)"/g;
/** Bearer <token>: the scheme word is enough, a token is never shorter than 8 characters */
const BEARER = /\b(Bearer)(\s+)[A-Za-z0-9._~+/=-]{8,}/gi;
/** Basic <base64>: only when it decodes to user:password, so "basic authentication" stays */
const BASIC = /\b(Basic)(\s+)([A-Za-z0-9+/]{4,}={0,2})(?![A-Za-z0-9+/=])/gi;

/** a URL found in text, without the prose punctuation that follows it: "(see http://x/a)." */
function redactUrlInText(url: string): string {
  let end = url.length;
  for (;;) {
    const c = url[end - 1];
    if (c === '.' || c === ',' || c === ';' || c === '!' || c === "'") end--;
    else if (c === ')' && url.split('(').length < url.slice(0, end).split(')').length) end--;
    else break;
  }
  return redactUrl(url.slice(0, end)) + url.slice(end);
}

/** Any text from a process or a request, with the secrets it visibly carries redacted. */
export function redactText(text: string): string {
  if (text.length < 3) return text;
  const assign = ASSIGNMENT.exec(text);
  if (assign && isSecretName(assign[1]!)) return `${assign[1]}${assign[2]}${REDACTED}`;
  const header = HEADER_LINE.exec(text);
  if (header && !header[3]!.startsWith('//') && isSecretName(header[1]!)) return `${header[1]}:${header[2]}${REDACTED}`;
  const bare = SCHEMELESS_USERINFO.exec(text);
  if (bare) return `${redactUserinfo(bare[1]!)}@${bare[2]}${redactUrlTail(bare[3]!)}`;
  let out = text.indexOf('://') >= 0 ? text.replace(URL_IN_TEXT, redactUrlInText) : text;
  if (out.indexOf('=') >= 0) {
    // a value the URL rule already replaced keeps the punctuation after it: "(…?token=REDACTED)"
    out = out.replace(INLINE_PAIR, (all, lead: string, name: string, value: string) =>
      isSecretName(name) && !ALREADY_REDACTED.test(value) ? `${lead}${name}=${REDACTED}` : all,
    );
  }
  if (out.indexOf('"') >= 0) {
    out = out.replace(JSON_PAIR, (all, name: string, colon: string) => (isSecretName(name) ? `"${name}"${colon}"${REDACTED}"` : all));
  }
  out = out.replace(BEARER, `$1$2${REDACTED}`);
  out = out.replace(BASIC, (all, scheme: string, space: string, b64: string) =>
    /^[\x20-\x7e]+:[\x20-\x7e]*$/.test(Buffer.from(b64, 'base64').toString('latin1')) ? `${scheme}${space}${REDACTED}` : all,
  );
  return out;
}

/** [:port][/path?query] of a scheme-less URL */
function redactUrlTail(tail: string): string {
  return tail.length === 0 ? tail : redactUrl(`x://h${tail}`).slice('x://h'.length);
}

// --- command lines ----------------------------------------------------------------------

/** Tools where -p is the password (mysql -pSECRET, sshpass -p SECRET); everywhere else -p is
 *  a port, a pid, a path or a profile and stays. */
const P_IS_PASSWORD = /^(?:(?:mysql|mariadb)[\w-]*|sshpass)$/;
/** Flags whose value is user:password for any tool (curl --user, --proxy-user). */
const USER_FLAGS = new Set(['user', 'proxy-user']);

/** the next argument looks like another flag rather than a value: --x or -x */
function looksLikeFlag(a: string): boolean {
  return /^--[A-Za-z]/.test(a) || /^-[A-Za-z]$/.test(a);
}

/** user:password values; a bare number pair is uid:gid (docker --user 1000:1000), not a login,
 *  except for curl where -u/--user is always a login */
function userValue(v: string, curl: boolean): string {
  if (!curl && /^\d+(?::\d+)?$/.test(v)) return v;
  return v.indexOf(':') < 0 ? v : redactUserinfo(v);
}

/** curl --cert/-E file[:password] */
function certValue(v: string): string {
  const c = v.lastIndexOf(':');
  return c > 0 ? `${v.slice(0, c)}:${REDACTED}` : v;
}

function flagValue(name: string, value: string, curl: boolean): string {
  if (isSecretName(name)) return value.length > 0 ? REDACTED : value;
  if (USER_FLAGS.has(name)) return userValue(value, curl);
  return redactText(value);
}

/**
 * A command line (argv as in /proc/<pid>/cmdline) with its secrets replaced by REDACTED,
 * argument by argument; the executable and the other arguments are kept as they are.
 */
export function redactArgv(argv: readonly string[]): string[] {
  // a process that rewrote its title (setproctitle) has its whole command line in argv[0]
  if (argv.length === 1 && /\s/.test(argv[0]!)) return [redactArgv(argv[0]!.split(/ +/)).join(' ')];
  const tool = basename(argv[0] ?? '');
  const pIsPassword = P_IS_PASSWORD.test(tool);
  const curl = tool === 'curl';
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    if (i === 0) {
      out.push(redactText(a));
      continue;
    }
    if (pIsPassword && a.startsWith('-p') && !a.startsWith('--')) {
      // mysql's own rule is "-pX or nothing" (-p X reads X as a database): a person who wrote
      // -p X meant a password, so X goes too; losing a database name is the cheaper mistake
      if (a.length > 2) out.push(`-p${REDACTED}`);
      else if (next !== undefined && !looksLikeFlag(next)) {
        out.push(a, REDACTED);
        i++;
      } else out.push(a);
      continue;
    }
    if (curl && /^-[uUE]/.test(a)) {
      const value = (v: string) => (a[1] === 'E' ? certValue(v) : userValue(v, true));
      if (a.length > 2) out.push(a.slice(0, 2) + value(a.slice(2)));
      else if (next !== undefined) {
        out.push(a, value(next));
        i++;
      } else out.push(a);
      continue;
    }
    const flag = /^(--?)([A-Za-z][\w.-]*)(?:=(.*))?$/s.exec(a);
    if (flag) {
      const [, dashes, name, value] = flag as unknown as [string, string, string, string | undefined];
      if (value !== undefined) {
        out.push(`${dashes}${name}=${flagValue(name, value, curl)}`);
        continue;
      }
      out.push(a);
      if (next === undefined || looksLikeFlag(next)) continue;
      // the flag's value is the next argument
      if (isSecretName(name)) {
        if (next.length > 0) out.push(REDACTED);
        i++;
      } else if (USER_FLAGS.has(name)) {
        out.push(userValue(next, curl));
        i++;
      } else if (curl && name === 'cert') {
        out.push(certValue(next));
        i++;
      }
      continue;
    }
    // a short flag with its value attached: -HAuthorization: …, -Dname=value is caught above
    if (/^-[A-Za-z]./s.test(a)) {
      out.push(a.slice(0, 2) + redactText(a.slice(2)));
      continue;
    }
    out.push(redactText(a));
  }
  return out;
}
