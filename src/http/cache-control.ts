/**
 * Cache-Control for object responses (RFC 9111 §5.2). Pure; the route passes the auth kind,
 * the link's expiry and the store's configured value.
 *
 * - Bearer requests: the store's configured value, else `private, no-store` — what a bearer
 *   token reads is nobody else's business, and a shared cache must not keep it.
 * - Signed links: by default `private, max-age=N`, N = min(maxAgeSec (default 3600), seconds
 *   the link has left), at least 0. With a configured value, every max-age and s-maxage in it
 *   is clamped to the link's remaining lifetime, and max-age=<remaining> is added when it has
 *   no max-age, no-store or no-cache (a cache would otherwise pick a heuristic lifetime).
 *   The invariant: no cache may serve a link's response as fresh after the link expired.
 * - A configured value that is not valid Cache-Control syntax is ignored (the default is used),
 *   so nothing malformed reaches a header; the config schema should refuse it up front with
 *   `isValidCacheControl`.
 */

/** Default freshness of a signed-link response, in seconds, before clamping to the link's expiry. */
export const DEFAULT_LINK_MAX_AGE_SEC = 3600;
/** Cache-Control of bearer-authenticated responses when the store configures none. */
export const DEFAULT_BEARER_CACHE_CONTROL = 'private, no-store';
/** Longest accepted configured Cache-Control value, in characters. */
export const MAX_CACHE_CONTROL_CHARS = 512;

/** What decides a response's Cache-Control. */
export interface CacheControlOptions {
  auth: 'bearer' | 'link';
  /** The link's `exp` claim, in seconds since the epoch (links only). */
  linkExpiresAtSec?: number | undefined;
  /** The current time, in seconds since the epoch. */
  nowSec: number;
  /** The store's configured Cache-Control, if any. */
  configured?: string | undefined;
  /** Default link freshness in seconds (DEFAULT_LINK_MAX_AGE_SEC when unset). */
  maxAgeSec?: number | undefined;
}

interface Directive {
  /** Lower-cased directive name. */
  name: string;
  /** The value without quotes, if any. */
  value: string | undefined;
  /** The directive as written, trimmed. */
  raw: string;
}

// RFC 9111 §5.2: Cache-Control = #cache-directive; cache-directive = token [ "=" ( token / quoted-string ) ].
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const QUOTED_STRING = '"(?:[\\t \\x21\\x23-\\x5b\\x5d-\\x7e]|\\\\[\\t \\x21-\\x7e])*"';
const DIRECTIVE_RE = new RegExp(`^(${TOKEN})(?:=(${TOKEN}|${QUOTED_STRING}))?$`);
const DELTA_SECONDS_RE = /^\d+$/;
const FIELD_VALUE_RE = /^[\t\x20-\x7e]*$/;

/** Split a Cache-Control value into directives (commas inside quoted strings kept), or undefined if invalid. */
function parseDirectives(value: string): Directive[] | undefined {
  // Field values are visible ASCII, SP and HTAB; a CR/LF anywhere, even at the end, is refused.
  if (value.length > MAX_CACHE_CONTROL_CHARS || !FIELD_VALUE_RE.test(value)) return undefined;
  const members: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (quoted && ch === '\\') i++;
    else if (ch === '"') quoted = !quoted;
    else if (ch === ',' && !quoted) {
      members.push(value.slice(start, i));
      start = i + 1;
    }
  }
  if (quoted) return undefined;
  members.push(value.slice(start));

  const directives: Directive[] = [];
  for (const member of members) {
    const raw = member.trim();
    // RFC 9110 §5.6.1: empty list members are ignored.
    if (raw === '') continue;
    const m = DIRECTIVE_RE.exec(raw);
    if (!m) return undefined;
    const v = m[2];
    const value = v === undefined ? undefined : v.startsWith('"') ? v.slice(1, -1).replace(/\\(.)/g, '$1') : v;
    directives.push({ name: m[1]!.toLowerCase(), value, raw });
  }
  return directives.length === 0 ? undefined : directives;
}

/** True when `value` is a syntactically valid, non-empty Cache-Control value (for the config schema). */
export function isValidCacheControl(value: string): boolean {
  return parseDirectives(value) !== undefined;
}

/** Whole seconds, never negative; NaN counts as 0. */
function wholeSeconds(n: number): number {
  return Number.isNaN(n) ? 0 : Math.max(0, Math.floor(n));
}

// RFC 9111 §5.2.2.1 / §5.2.2.10: max-age and s-maxage bound how long a response stays fresh in
// private and shared caches; both are clamped so neither outlives the link.
function clampToLink(directives: Directive[], remainingSec: number): string {
  const out: string[] = [];
  let hasMaxAge = false;
  let forbidsReuse = false;
  for (const d of directives) {
    if (d.name === 'no-store' || d.name === 'no-cache') forbidsReuse = true;
    if (d.name !== 'max-age' && d.name !== 's-maxage') {
      out.push(d.raw);
      continue;
    }
    if (d.name === 'max-age') hasMaxAge = true;
    // RFC 9111 §1.2.2: delta-seconds = 1*DIGIT; an invalid value gets the link's lifetime.
    const given = d.value !== undefined && DELTA_SECONDS_RE.test(d.value) ? Number(d.value) : Infinity;
    const clamped = Math.min(given, remainingSec);
    out.push(Number.isFinite(clamped) ? `${d.name}=${clamped}` : d.raw);
  }
  if (!hasMaxAge && !forbidsReuse && Number.isFinite(remainingSec)) out.push(`max-age=${remainingSec}`);
  return out.join(', ');
}

/**
 * The Cache-Control of an object response (see the module comment for the rules).
 *
 * @example cacheControlFor({ auth: 'link', nowSec: 1000, linkExpiresAtSec: 1600 }) // 'private, max-age=600'
 * @example cacheControlFor({ auth: 'bearer', nowSec: 1000 }) // 'private, no-store'
 */
export function cacheControlFor(opts: CacheControlOptions): string {
  const directives = opts.configured === undefined ? undefined : parseDirectives(opts.configured);
  if (opts.auth === 'bearer') {
    return directives === undefined ? DEFAULT_BEARER_CACHE_CONTROL : directives.map((d) => d.raw).join(', ');
  }
  // A link without `exp` (not issued by our signer) is not clamped.
  const remainingSec =
    opts.linkExpiresAtSec === undefined ? Infinity : wholeSeconds(opts.linkExpiresAtSec - opts.nowSec);
  if (directives !== undefined) return clampToLink(directives, remainingSec);
  const maxAgeSec =
    opts.maxAgeSec === undefined || !Number.isFinite(opts.maxAgeSec)
      ? DEFAULT_LINK_MAX_AGE_SEC
      : wholeSeconds(opts.maxAgeSec);
  return `private, max-age=${Math.min(maxAgeSec, remainingSec)}`;
}
