/**
 * Conditional requests (RFC 9110 §13): entity-tag lists, HTTP-dates and the order in which the
 * preconditions are evaluated. Pure: the route passes the request's header values and the
 * current validators, and maps the decision to 200/206, 304 or 412.
 *
 * Last-Modified goes out with one-second precision (`toUTCString`), so every date comparison
 * here truncates the stored modification time to whole seconds first: a client echoing our
 * Last-Modified must match, even when the store knows milliseconds.
 */

/** The validators of the selected representation. */
export interface Validators {
  /** Quoted entity tag (`"abc"` or `W/"abc"`). */
  etag: string;
  /** Milliseconds since the epoch, when known. */
  lastModifiedMs?: number | undefined;
}

/** The conditional header values of a request, as received (undefined when absent). */
export interface ConditionalRequest {
  method: string;
  ifMatch?: string | undefined;
  ifNoneMatch?: string | undefined;
  ifModifiedSince?: string | undefined;
  ifUnmodifiedSince?: string | undefined;
}

/** What the route does next: answer normally, 304, or 412. */
export type PreconditionResult = 'proceed' | 'not-modified' | 'precondition-failed';

/** A parsed entity tag; `opaque` keeps its double quotes. */
export interface EntityTag {
  weak: boolean;
  opaque: string;
}

const MS_PER_SEC = 1000;

// RFC 9110 §8.8.3: entity-tag = [ weak ] opaque-tag; weak = %s"W/"; opaque-tag = DQUOTE *etagc DQUOTE;
// etagc = %x21 / %x23-7E / obs-text. Commas are legal inside the quotes, so lists are scanned,
// never split on ','.
const ETAGC_RE = /^[\x21\x23-\x7e\x80-\xff]*$/;

/** Parse one entity tag (`"x"` or `W/"x"`), or undefined when it is not one. */
export function parseEntityTag(value: string): EntityTag | undefined {
  const v = value.trim();
  const weak = v.startsWith('W/');
  const opaque = weak ? v.slice(2) : v;
  if (opaque.length < 2 || !opaque.startsWith('"') || !opaque.endsWith('"')) return undefined;
  if (!ETAGC_RE.test(opaque.slice(1, -1))) return undefined;
  return { weak, opaque };
}

/**
 * Parse an If-Match / If-None-Match value: `'*'`, or the list of entity tags it holds.
 * Members that are not entity tags (unquoted values, a `*` inside a list) are skipped, so a
 * malformed If-Match ends up matching nothing, which fails safe (412), and a malformed
 * If-None-Match matches nothing, which serves the full response.
 */
export function parseEntityTagList(value: string): '*' | EntityTag[] {
  if (value.trim() === '*') return '*';
  const tags: EntityTag[] = [];
  let i = 0;
  while (i < value.length) {
    const ch = value[i];
    // RFC 9110 §5.6.1: OWS and empty list members are skipped.
    if (ch === ',' || ch === ' ' || ch === '\t') {
      i++;
      continue;
    }
    const weak = value.startsWith('W/"', i);
    const quote = weak ? i + 2 : i;
    if (value[quote] === '"') {
      const close = value.indexOf('"', quote + 1);
      if (close === -1) break;
      const tag = parseEntityTag(value.slice(i, close + 1));
      if (tag) tags.push(tag);
      i = close + 1;
      continue;
    }
    // Not an entity tag: skip this member up to the next comma.
    const next = value.indexOf(',', i);
    i = next === -1 ? value.length : next + 1;
  }
  return tags;
}

/** Our own ETag as an EntityTag; an unquoted one (never expected) is compared as if quoted. */
function currentTag(etag: string): EntityTag {
  return parseEntityTag(etag) ?? { weak: false, opaque: `"${etag.replace(/"/g, '')}"` };
}

// RFC 9110 §8.8.3.2: strong comparison — both tags strong and their opaque-tags identical.
/** Strong comparison of two entity tags. */
export function strongMatch(a: EntityTag, b: EntityTag): boolean {
  return !a.weak && !b.weak && a.opaque === b.opaque;
}

// RFC 9110 §8.8.3.2: weak comparison — opaque-tags identical, whatever the W/ prefix.
/** Weak comparison of two entity tags. */
export function weakMatch(a: EntityTag, b: EntityTag): boolean {
  return a.opaque === b.opaque;
}

// RFC 9110 §5.6.7: HTTP-date = IMF-fixdate / obs-date (rfc850-date / asctime-date).
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH = '(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
const IMF_FIXDATE_RE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`);
const RFC850_RE = new RegExp(
  `^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`,
);
const ASCTIME_RE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`);
/** RFC 9110 §5.6.7: a two-digit year more than 50 years ahead belongs to the previous century. */
const RFC850_FUTURE_YEARS = 50;

function utcMs(year: number, month: string, day: number, h: number, m: number, s: number): number | undefined {
  const mon = MONTHS.indexOf(month);
  if (h > 23 || m > 59 || s > 60) return undefined;
  const ms = Date.UTC(year, mon, day, h, m, Math.min(s, 59));
  // Date.UTC rolls 31 Feb over into March; such a date is not valid.
  const d = new Date(ms);
  if (d.getUTCFullYear() !== year || d.getUTCMonth() !== mon || d.getUTCDate() !== day) return undefined;
  return ms;
}

/**
 * Parse an HTTP-date (IMF-fixdate, or the obsolete RFC 850 and asctime forms recipients must
 * accept) into milliseconds since the epoch; undefined when it is not exactly one date. Stricter
 * than `Date.parse`, which would read `"1"` or a list of dates as some date.
 */
export function parseHttpDate(value: string, nowMs = Date.now()): number | undefined {
  const v = value.trim();
  let m = IMF_FIXDATE_RE.exec(v);
  if (m) return utcMs(Number(m[3]), m[2]!, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  m = RFC850_RE.exec(v);
  if (m) {
    const thisYear = new Date(nowMs).getUTCFullYear();
    let year = Math.floor(thisYear / 100) * 100 + Number(m[3]);
    if (year > thisYear + RFC850_FUTURE_YEARS) year -= 100;
    return utcMs(year, m[2]!, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  }
  m = ASCTIME_RE.exec(v);
  if (m) return utcMs(Number(m[6]), m[1]!, Number(m[2]!.trim()), Number(m[3]), Number(m[4]), Number(m[5]));
  return undefined;
}

/** Whole seconds since the epoch, as Last-Modified carries them. */
export function toWholeSeconds(ms: number): number {
  return Math.floor(ms / MS_PER_SEC);
}

// RFC 9110 §13.1.1: If-Match is true for '*' when a representation exists, else when any listed
// tag matches the current ETag by strong comparison.
function ifMatchPasses(value: string, current: Validators | undefined): boolean {
  const list = parseEntityTagList(value);
  if (current === undefined) return false;
  if (list === '*') return true;
  const tag = currentTag(current.etag);
  return list.some((t) => strongMatch(t, tag));
}

// RFC 9110 §13.1.2: If-None-Match is false for '*' when a representation exists, else when any
// listed tag matches the current ETag by weak comparison.
function ifNoneMatchPasses(value: string, current: Validators | undefined): boolean {
  const list = parseEntityTagList(value);
  if (current === undefined) return true;
  if (list === '*') return false;
  const tag = currentTag(current.etag);
  return !list.some((t) => weakMatch(t, tag));
}

/** A request header's date, or undefined when absent or not a valid HTTP-date (then ignored). */
function headerDate(value: string | undefined): number | undefined {
  return value === undefined ? undefined : parseHttpDate(value);
}

/**
 * Evaluate the preconditions of a request against the current representation, in the order of
 * RFC 9110 §13.2.2. `current` is undefined when the target has no representation (a PUT that
 * creates): `If-Match: *` then fails and `If-None-Match: *` passes.
 *
 * - If-Match (strong), else If-Unmodified-Since: false → 'precondition-failed'.
 * - If-None-Match (weak), else If-Modified-Since for GET/HEAD: false → 'not-modified' for
 *   GET/HEAD, 'precondition-failed' for other methods.
 * - Date conditions are ignored when the date is invalid or the representation has no
 *   modification time. If-Range is evaluated separately (see `ifRangeMatches` in range.ts).
 *
 * Not done: §13.2.2's "unless the state-changing request has already succeeded" exception;
 * a repeated successful PUT gets 412.
 */
export function evaluatePreconditions(req: ConditionalRequest, current: Validators | undefined): PreconditionResult {
  const method = req.method.toUpperCase();
  const safe = method === 'GET' || method === 'HEAD';
  const lastModifiedSec =
    current?.lastModifiedMs === undefined ? undefined : toWholeSeconds(current.lastModifiedMs);

  // RFC 9110 §13.2.2 steps 1–2
  if (req.ifMatch !== undefined) {
    if (!ifMatchPasses(req.ifMatch, current)) return 'precondition-failed';
  } else {
    // RFC 9110 §13.1.4: false when the representation was modified after the given date.
    const since = headerDate(req.ifUnmodifiedSince);
    if (since !== undefined && lastModifiedSec !== undefined && lastModifiedSec > toWholeSeconds(since)) {
      return 'precondition-failed';
    }
  }

  // RFC 9110 §13.2.2 steps 3–4
  if (req.ifNoneMatch !== undefined) {
    if (!ifNoneMatchPasses(req.ifNoneMatch, current)) return safe ? 'not-modified' : 'precondition-failed';
  } else if (safe) {
    // RFC 9110 §13.1.3: false when the representation was not modified after the given date.
    const since = headerDate(req.ifModifiedSince);
    if (since !== undefined && lastModifiedSec !== undefined && lastModifiedSec <= toWholeSeconds(since)) {
      return 'not-modified';
    }
  }
  return 'proceed';
}

// RFC 9110 §15.4.5: a 304 carries the fields a 200 would have had among Content-Location, Date,
// ETag, Vary, Cache-Control and Expires; Last-Modified is kept as it guides cache updates.
/** The header names (lower case) a 304 response keeps. */
export const NOT_MODIFIED_KEPT_HEADERS: readonly string[] = [
  'cache-control',
  'content-location',
  'date',
  'etag',
  'expires',
  'last-modified',
  'vary',
];

/**
 * The subset of a 200 response's headers that a 304 keeps (names compared case-insensitively,
 * original spelling preserved). `access-control-*` headers are kept too: a conditional request
 * made by script receives the 304 itself and fails the CORS check without
 * Access-Control-Allow-Origin. `alsoKeep` adds more names (e.g. `x-cg-status`).
 */
export function notModifiedHeaders(
  headers: Readonly<Record<string, string>>,
  alsoKeep: readonly string[] = [],
): Record<string, string> {
  const keep = new Set([...NOT_MODIFIED_KEPT_HEADERS, ...alsoKeep.map((h) => h.toLowerCase())]);
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (keep.has(lower) || lower.startsWith('access-control-')) out[name] = value;
  }
  return out;
}
