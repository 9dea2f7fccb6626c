/**
 * Range requests (RFC 9110 §14): parsing `Range: bytes=…` against the object's size, the
 * Content-Range values, and If-Range. Pure: the route decides what to send.
 *
 * Decisions:
 * - Anything we must or may ignore (no header, another unit, invalid syntax, more than
 *   MAX_RANGES specs) is `{ kind: 'none' }`: the route serves the whole object with 200, which
 *   RFC 9110 §14.2 always allows.
 * - Several satisfiable ranges are first coalesced (sorted; overlapping or adjacent ones merged).
 *   If one range remains it is `'single'` (206). Otherwise `'multiple'`, and the route answers
 *   200 with the whole object instead of multipart/byteranges: simpler, interoperable (every
 *   client must accept a 200 for a Range request), and media players and download managers
 *   never ask for several ranges. Coalescing also defuses the overlapping-ranges amplification
 *   (the "Apache killer"): no byte is ever sent twice.
 * - An empty object satisfies no int-range and no `-0`: 416 with `bytes *\/0`. RFC 9110 §14.1.1
 *   calls a non-zero suffix range on an empty representation satisfiable, but no Content-Range
 *   can describe an empty part, so that case is `'none'` (200 with the empty body).
 * - Range only applies to GET (§14.2); the route must not call this for other methods. HEAD is
 *   the route's call (many servers answer HEAD with the 206 headers a GET would get).
 */
import { parseEntityTag, parseHttpDate, strongMatch, toWholeSeconds } from './conditional.js';

/** More range specs than this in one header and the header is ignored (RFC 9110 §14.2 allows it). */
export const MAX_RANGES = 32;
/** A Range header longer than this (characters) is ignored without parsing. */
export const MAX_RANGE_HEADER_CHARS = 1024;

/** An inclusive byte range: `start` and `end` are offsets of the first and last byte. */
export interface ByteRange {
  start: number;
  end: number;
}

/** What a Range header asks of an object of a given size. */
export type RangeResult =
  | { kind: 'none' }
  | { kind: 'unsatisfiable' }
  | ({ kind: 'single' } & ByteRange)
  | { kind: 'multiple'; ranges: ByteRange[] };

/** A syntactically valid range-spec, not yet resolved against a size. */
type RangeSpec = { kind: 'int'; first: string; last: string | undefined } | { kind: 'suffix'; length: string };

const NONE: RangeResult = { kind: 'none' };
const UNSATISFIABLE: RangeResult = { kind: 'unsatisfiable' };

// RFC 9110 §14.1.1: range-unit = token; the unit is compared case-insensitively.
const RANGES_SPECIFIER_RE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)=(.*)$/s;
// RFC 9110 §14.1.2: int-range = first-pos "-" [ last-pos ]; suffix-range = "-" suffix-length.
const INT_RANGE_RE = /^(\d+)-(\d*)$/;
const SUFFIX_RANGE_RE = /^-(\d+)$/;

/** Compare two non-negative decimal strings exactly, whatever their length. */
function compareDigits(a: string, b: string): number {
  const x = a.replace(/^0+(?=\d)/, '');
  const y = b.replace(/^0+(?=\d)/, '');
  if (x.length !== y.length) return x.length - y.length;
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * A digit string as a number. Beyond 2^53 the value is approximate, which is harmless: every
 * object is far smaller, so such a position only ever compares as "past the end".
 */
function toNumber(digits: string): number {
  return Number(digits);
}

/** The specs of a `bytes` range-set, or undefined when the set is invalid (then ignored). */
function parseRangeSet(set: string): RangeSpec[] | undefined {
  const specs: RangeSpec[] = [];
  // RFC 9110 §5.6.1: 1#range-spec — OWS around commas, empty members skipped, at least one.
  for (const raw of set.split(',')) {
    const part = raw.trim();
    if (part === '') continue;
    if (specs.length === MAX_RANGES) return undefined;
    const int = INT_RANGE_RE.exec(part);
    if (int) {
      const first = int[1]!;
      const last = int[2] === '' ? undefined : int[2]!;
      // RFC 9110 §14.1.1: an int-range with last-pos < first-pos is invalid.
      if (last !== undefined && compareDigits(last, first) < 0) return undefined;
      specs.push({ kind: 'int', first, last });
      continue;
    }
    const suffix = SUFFIX_RANGE_RE.exec(part);
    if (suffix) {
      specs.push({ kind: 'suffix', length: suffix[1]! });
      continue;
    }
    return undefined;
  }
  return specs.length === 0 ? undefined : specs;
}

// RFC 9110 §14.1.2: resolving a range-spec against the current length. An int-range is
// satisfiable when first-pos < length (last-pos is clamped to length - 1); a suffix-range when
// its length is non-zero (a suffix longer than the object selects all of it).
function resolve(spec: RangeSpec, size: number): ByteRange | undefined {
  if (spec.kind === 'int') {
    const start = toNumber(spec.first);
    if (start >= size) return undefined;
    const end = spec.last === undefined ? size - 1 : Math.min(toNumber(spec.last), size - 1);
    return { start, end };
  }
  const length = toNumber(spec.length);
  if (length === 0 || size === 0) return undefined;
  return { start: Math.max(0, size - length), end: size - 1 };
}

// RFC 9110 §14.2: a server MAY coalesce ranges that overlap or that are separated by a gap
// smaller than the overhead of sending multiple parts. Only overlapping or adjacent ranges are
// merged here: a client then gets exactly the bytes it asked for.
/** Sort and merge overlapping or adjacent ranges. The input is not modified. */
export function coalesceRanges(ranges: readonly ByteRange[]): ByteRange[] {
  const sorted = [...ranges].sort((a, b) => a.start - b.start || a.end - b.end);
  const out: ByteRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && r.start <= last.end + 1) last.end = Math.max(last.end, r.end);
    else out.push({ start: r.start, end: r.end });
  }
  return out;
}

/**
 * Interpret a Range header for an object of `size` bytes (RFC 9110 §14.1–14.2).
 *
 * - `none`: no header, a unit other than `bytes`, invalid syntax (e.g. `bytes=5-2`), more than
 *   MAX_RANGES specs, or a suffix range on an empty object → serve 200 with the whole object.
 * - `unsatisfiable`: valid, but no spec overlaps the object (`bytes=100-` on 50 bytes,
 *   `bytes=-0`) → 416 with `Content-Range: bytes *\/size` (see `unsatisfiedRange`).
 * - `single`: one inclusive range, clamped to `size - 1` → 206 (see `contentRange`).
 * - `multiple`: several disjoint ranges after coalescing, sorted → the route serves 200.
 * Unsatisfiable specs next to satisfiable ones are dropped.
 */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined || header.length > MAX_RANGE_HEADER_CHARS) return NONE;
  const m = RANGES_SPECIFIER_RE.exec(header.trim());
  if (!m || m[1]!.toLowerCase() !== 'bytes') return NONE;
  const specs = parseRangeSet(m[2]!);
  if (!specs) return NONE;

  const ranges: ByteRange[] = [];
  let suffixOnEmpty = false;
  for (const spec of specs) {
    const r = resolve(spec, size);
    if (r) ranges.push(r);
    else if (size === 0 && spec.kind === 'suffix' && compareDigits(spec.length, '0') > 0) suffixOnEmpty = true;
  }
  if (suffixOnEmpty) return NONE;
  if (ranges.length === 0) return UNSATISFIABLE;
  const merged = coalesceRanges(ranges);
  if (merged.length === 1) return { kind: 'single', ...merged[0]! };
  return { kind: 'multiple', ranges: merged };
}

// RFC 9110 §14.4: Content-Range = range-unit SP ( range-resp / unsatisfied-range ).
/** The Content-Range of a 206: `bytes start-end/size`. */
export function contentRange(start: number, end: number, size: number): string {
  return `bytes ${start}-${end}/${size}`;
}

/** The Content-Range of a 416: `bytes *\/size`. */
export function unsatisfiedRange(size: number): string {
  return `bytes */${size}`;
}

/**
 * Evaluate If-Range (RFC 9110 §13.1.5): true when the header is absent, so the Range applies;
 * false means "ignore Range and send the whole object with 200". The route must ignore If-Range
 * when there is no Range header.
 *
 * - An entity tag matches only by strong comparison: a weak tag, ours or theirs, never matches.
 * - An HTTP-date matches only when it equals Last-Modified exactly, in whole seconds.
 * - Anything else (unparseable value, date without a known Last-Modified) is false.
 *
 * Simplification: §13.1.5 wants the date to be a strong validator, i.e. Last-Modified at least
 * one second before the response's Date (§8.8.2.2). Objects are written whole and rarely twice
 * in the same second, so Last-Modified is treated as strong; ETag-based If-Range, which every
 * browser and player sends when it has an ETag, has no such caveat.
 */
export function ifRangeMatches(
  header: string | undefined,
  meta: { etag: string; lastModifiedMs?: number | undefined },
): boolean {
  if (header === undefined) return true;
  const value = header.trim();
  if (value.startsWith('"') || value.startsWith('W/')) {
    const theirs = parseEntityTag(value);
    const ours = parseEntityTag(meta.etag);
    return theirs !== undefined && ours !== undefined && strongMatch(theirs, ours);
  }
  const date = parseHttpDate(value);
  if (date === undefined || meta.lastModifiedMs === undefined) return false;
  return toWholeSeconds(date) === toWholeSeconds(meta.lastModifiedMs);
}
