import { describe, expect, it } from 'vitest';

import {
  evaluatePreconditions,
  notModifiedHeaders,
  parseEntityTag,
  parseEntityTagList,
  parseHttpDate,
  strongMatch,
  weakMatch,
  type ConditionalRequest,
  type PreconditionResult,
  type Validators,
} from '../../src/http/conditional.js';

const LM_MS = Date.UTC(2024, 0, 15, 10, 30, 0, 500); // Mon, 15 Jan 2024 10:30:00.500 GMT
const LM = 'Mon, 15 Jan 2024 10:30:00 GMT';
const BEFORE = 'Mon, 15 Jan 2024 10:29:59 GMT';
const AFTER = 'Mon, 15 Jan 2024 10:30:01 GMT';
const META: Validators = { etag: '"v1"', lastModifiedMs: LM_MS };

describe('parseEntityTag', () => {
  it.each([
    ['"abc"', { weak: false, opaque: '"abc"' }],
    ['W/"abc"', { weak: true, opaque: '"abc"' }],
    ['""', { weak: false, opaque: '""' }],
    ['"a,b"', { weak: false, opaque: '"a,b"' }],
    [' "abc" ', { weak: false, opaque: '"abc"' }],
    ['abc', undefined],
    ['"abc', undefined],
    ['w/"abc"', undefined],
    ['"a b"', undefined],
    ['"a"b"', undefined],
    ['W/', undefined],
    ['*', undefined],
  ])('%j → %j', (value, expected) => {
    expect(parseEntityTag(value)).toEqual(expected);
  });
});

describe('parseEntityTagList', () => {
  it.each([
    ['*', '*'],
    [' * ', '*'],
    ['"a"', [{ weak: false, opaque: '"a"' }]],
    ['"a", W/"b"', [{ weak: false, opaque: '"a"' }, { weak: true, opaque: '"b"' }]],
    ['"a",W/"b" ,  "c"', [{ weak: false, opaque: '"a"' }, { weak: true, opaque: '"b"' }, { weak: false, opaque: '"c"' }]],
    ['"a,b", "c"', [{ weak: false, opaque: '"a,b"' }, { weak: false, opaque: '"c"' }]],
    [',,"a",,', [{ weak: false, opaque: '"a"' }]],
    // invalid members are skipped
    ['abc, "a"', [{ weak: false, opaque: '"a"' }]],
    ['*, "a"', [{ weak: false, opaque: '"a"' }]],
    ['"a", "unterminated', [{ weak: false, opaque: '"a"' }]],
    ['abc', []],
    ['', []],
  ])('%j → %j', (value, expected) => {
    expect(parseEntityTagList(value)).toEqual(expected);
  });
});

describe('entity-tag comparison (RFC 9110 §8.8.3.2 table)', () => {
  const tag = (s: string) => parseEntityTag(s)!;
  it.each([
    ['W/"1"', 'W/"1"', false, true],
    ['W/"1"', 'W/"2"', false, false],
    ['W/"1"', '"1"', false, true],
    ['"1"', '"1"', true, true],
  ])('%s vs %s: strong %s, weak %s', (a, b, strong, weak) => {
    expect(strongMatch(tag(a), tag(b))).toBe(strong);
    expect(weakMatch(tag(a), tag(b))).toBe(weak);
  });
});

describe('parseHttpDate', () => {
  const NOW = Date.UTC(2025, 5, 1);
  it.each([
    ['Sun, 06 Nov 1994 08:49:37 GMT', Date.UTC(1994, 10, 6, 8, 49, 37)],
    ['  Sun, 06 Nov 1994 08:49:37 GMT ', Date.UTC(1994, 10, 6, 8, 49, 37)],
    ['Sunday, 06-Nov-94 08:49:37 GMT', Date.UTC(1994, 10, 6, 8, 49, 37)],
    ['Friday, 06-Nov-26 08:49:37 GMT', Date.UTC(2026, 10, 6, 8, 49, 37)],
    ['Sun Nov  6 08:49:37 1994', Date.UTC(1994, 10, 6, 8, 49, 37)],
    ['Sun Nov 16 08:49:37 1994', Date.UTC(1994, 10, 16, 8, 49, 37)],
    ['Thu, 01 Jan 1970 00:00:00 GMT', 0],
    // invalid
    ['Sun, 06 Nov 1994 08:49:37 UTC', undefined],
    ['Sun, 6 Nov 1994 08:49:37 GMT', undefined],
    ['sun, 06 nov 1994 08:49:37 GMT', undefined],
    ['Sun, 31 Feb 1994 08:49:37 GMT', undefined],
    ['Sun, 06 Nov 1994 24:00:00 GMT', undefined],
    ['Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT', undefined],
    ['1994-11-06T08:49:37Z', undefined],
    ['1', undefined],
    ['', undefined],
  ])('%j → %s', (value, expected) => {
    expect(parseHttpDate(value, NOW)).toBe(expected);
  });

  it('reads a two-digit year more than 50 years ahead as the previous century', () => {
    expect(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', Date.UTC(2025, 0, 1))).toBe(Date.UTC(1994, 10, 6, 8, 49, 37));
    expect(parseHttpDate('Sunday, 06-Nov-75 08:49:37 GMT', Date.UTC(2025, 0, 1))).toBe(Date.UTC(2075, 10, 6, 8, 49, 37));
    expect(parseHttpDate('Sunday, 06-Nov-76 08:49:37 GMT', Date.UTC(2025, 0, 1))).toBe(Date.UTC(1976, 10, 6, 8, 49, 37));
  });
});

describe('evaluatePreconditions', () => {
  type Row = [string, Omit<ConditionalRequest, 'method'> & { method?: string }, PreconditionResult];
  it.each<Row>([
    ['no conditions', {}, 'proceed'],
    // If-Match: strong comparison
    ['If-Match same tag', { ifMatch: '"v1"' }, 'proceed'],
    ['If-Match in list', { ifMatch: '"v0", "v1"' }, 'proceed'],
    ['If-Match other tag', { ifMatch: '"v2"' }, 'precondition-failed'],
    ['If-Match weak tag', { ifMatch: 'W/"v1"' }, 'precondition-failed'],
    ['If-Match *', { ifMatch: '*' }, 'proceed'],
    ['If-Match malformed', { ifMatch: 'v1' }, 'precondition-failed'],
    ['If-Match empty', { ifMatch: '' }, 'precondition-failed'],
    // If-Unmodified-Since only without If-Match
    ['IUS at Last-Modified', { ifUnmodifiedSince: LM }, 'proceed'],
    ['IUS after', { ifUnmodifiedSince: AFTER }, 'proceed'],
    ['IUS before', { ifUnmodifiedSince: BEFORE }, 'precondition-failed'],
    ['IUS invalid date ignored', { ifUnmodifiedSince: 'yesterday' }, 'proceed'],
    ['If-Match passes → IUS ignored', { ifMatch: '"v1"', ifUnmodifiedSince: BEFORE }, 'proceed'],
    ['If-Match fails even with IUS passing', { ifMatch: '"v2"', ifUnmodifiedSince: AFTER }, 'precondition-failed'],
    // If-None-Match: weak comparison
    ['INM same tag', { ifNoneMatch: '"v1"' }, 'not-modified'],
    ['INM weak form of tag', { ifNoneMatch: 'W/"v1"' }, 'not-modified'],
    ['INM in list', { ifNoneMatch: '"a", "v1"' }, 'not-modified'],
    ['INM other tag', { ifNoneMatch: '"v2"' }, 'proceed'],
    ['INM *', { ifNoneMatch: '*' }, 'not-modified'],
    ['INM malformed', { ifNoneMatch: 'v1' }, 'proceed'],
    ['INM match on HEAD', { method: 'HEAD', ifNoneMatch: '"v1"' }, 'not-modified'],
    ['INM match on PUT', { method: 'PUT', ifNoneMatch: '"v1"' }, 'precondition-failed'],
    ['INM * on PUT', { method: 'PUT', ifNoneMatch: '*' }, 'precondition-failed'],
    ['INM match on DELETE', { method: 'DELETE', ifNoneMatch: '"v1"' }, 'precondition-failed'],
    // If-Modified-Since: GET/HEAD only, and only without If-None-Match
    ['IMS at Last-Modified (ms truncated)', { ifModifiedSince: LM }, 'not-modified'],
    ['IMS after', { ifModifiedSince: AFTER }, 'not-modified'],
    ['IMS before', { ifModifiedSince: BEFORE }, 'proceed'],
    ['IMS on HEAD', { method: 'HEAD', ifModifiedSince: LM }, 'not-modified'],
    ['IMS on PUT ignored', { method: 'PUT', ifModifiedSince: LM }, 'proceed'],
    ['IMS invalid date ignored', { ifModifiedSince: 'Mon, 15 Jan 2024' }, 'proceed'],
    ['IMS with two dates ignored', { ifModifiedSince: `${LM}, ${LM}` }, 'proceed'],
    ['INM mismatch wins over IMS', { ifNoneMatch: '"v2"', ifModifiedSince: AFTER }, 'proceed'],
    ['INM match with IMS before', { ifNoneMatch: '"v1"', ifModifiedSince: BEFORE }, 'not-modified'],
    // Order: If-Match / IUS before If-None-Match / IMS
    ['If-Match fails before INM', { ifMatch: '"v2"', ifNoneMatch: '"v1"' }, 'precondition-failed'],
    ['IUS fails before IMS', { ifUnmodifiedSince: BEFORE, ifModifiedSince: AFTER }, 'precondition-failed'],
    ['If-Match passes, INM matches', { ifMatch: '"v1"', ifNoneMatch: '"v1"' }, 'not-modified'],
    ['If-Match passes, INM matches on PUT', { method: 'PUT', ifMatch: '"v1"', ifNoneMatch: '"v1"' }, 'precondition-failed'],
    ['If-Match on PUT', { method: 'PUT', ifMatch: '"v1"' }, 'proceed'],
    ['If-Match mismatch on PUT', { method: 'PUT', ifMatch: '"v0"' }, 'precondition-failed'],
    ['lower-case method', { method: 'get', ifNoneMatch: '"v1"' }, 'not-modified'],
  ])('%s', (_name, req, expected) => {
    expect(evaluatePreconditions({ method: 'GET', ...req }, META)).toBe(expected);
  });

  it('compares against a weak current ETag with weak semantics for If-None-Match only', () => {
    const weak: Validators = { etag: 'W/"v1"' };
    expect(evaluatePreconditions({ method: 'GET', ifNoneMatch: '"v1"' }, weak)).toBe('not-modified');
    expect(evaluatePreconditions({ method: 'GET', ifMatch: '"v1"' }, weak)).toBe('precondition-failed');
    expect(evaluatePreconditions({ method: 'GET', ifMatch: 'W/"v1"' }, weak)).toBe('precondition-failed');
  });

  it('ignores date conditions when there is no Last-Modified', () => {
    const noDate: Validators = { etag: '"v1"' };
    expect(evaluatePreconditions({ method: 'GET', ifModifiedSince: AFTER }, noDate)).toBe('proceed');
    expect(evaluatePreconditions({ method: 'GET', ifUnmodifiedSince: BEFORE }, noDate)).toBe('proceed');
  });

  it('handles a target without a representation (PUT that creates)', () => {
    expect(evaluatePreconditions({ method: 'PUT', ifNoneMatch: '*' }, undefined)).toBe('proceed');
    expect(evaluatePreconditions({ method: 'PUT', ifMatch: '*' }, undefined)).toBe('precondition-failed');
    expect(evaluatePreconditions({ method: 'PUT', ifMatch: '"v1"' }, undefined)).toBe('precondition-failed');
    expect(evaluatePreconditions({ method: 'PUT', ifUnmodifiedSince: BEFORE }, undefined)).toBe('proceed');
    expect(evaluatePreconditions({ method: 'PUT' }, undefined)).toBe('proceed');
  });
});

describe('notModifiedHeaders', () => {
  it('keeps only the fields a 304 may carry, in their original spelling', () => {
    const headers = {
      'content-type': 'image/png',
      'content-length': '1234',
      etag: '"v1"',
      'Last-Modified': LM,
      'cache-control': 'private, max-age=60',
      Expires: LM,
      vary: 'Origin',
      'content-location': '/b/k',
      date: LM,
      'content-range': 'bytes 0-1/2',
      'content-disposition': 'attachment',
      'x-cg-status': 'hit=1',
      'access-control-allow-origin': 'https://a.example',
      'Access-Control-Expose-Headers': 'ETag',
    };
    expect(notModifiedHeaders(headers)).toEqual({
      etag: '"v1"',
      'Last-Modified': LM,
      'cache-control': 'private, max-age=60',
      Expires: LM,
      vary: 'Origin',
      'content-location': '/b/k',
      date: LM,
      'access-control-allow-origin': 'https://a.example',
      'Access-Control-Expose-Headers': 'ETag',
    });
  });

  it('keeps extra names on request', () => {
    expect(notModifiedHeaders({ 'x-cg-status': 'hit=1', 'content-type': 'a/b' }, ['X-CG-Status'])).toEqual({
      'x-cg-status': 'hit=1',
    });
  });
});
