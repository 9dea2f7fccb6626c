import { describe, expect, it } from 'vitest';

import {
  MAX_RANGES,
  MAX_RANGE_HEADER_CHARS,
  coalesceRanges,
  contentRange,
  ifRangeMatches,
  parseRange,
  unsatisfiedRange,
  type RangeResult,
} from '../../src/http/range.js';

const NONE: RangeResult = { kind: 'none' };
const UNSAT: RangeResult = { kind: 'unsatisfiable' };
const single = (start: number, end: number): RangeResult => ({ kind: 'single', start, end });

describe('parseRange', () => {
  it.each<[string | undefined, number, RangeResult]>([
    // absent or ignored
    [undefined, 100, NONE],
    ['', 100, NONE],
    ['items=0-1', 100, NONE],
    ['bytes', 100, NONE],
    ['bytes=', 100, NONE],
    ['bytes=,', 100, NONE],
    ['bytes=,  ,', 100, NONE],
    ['bytes 0-1', 100, NONE],
    ['bytes = 0-1', 100, NONE],
    ['bytes=abc', 100, NONE],
    ['bytes=-', 100, NONE],
    ['bytes=1', 100, NONE],
    ['bytes=0-1-2', 100, NONE],
    ['bytes=--1', 100, NONE],
    ['bytes=+1-2', 100, NONE],
    ['bytes=0x10-0x20', 100, NONE],
    ['bytes=1.5-2', 100, NONE],
    ['bytes=0 - 1', 100, NONE],
    // RFC 9110 §14.1.1: last-pos < first-pos makes the whole header invalid
    ['bytes=5-2', 100, NONE],
    ['bytes=0-1,5-2', 100, NONE],
    ['bytes=0-1,x', 100, NONE],
    ['bytes=200-100', 50, NONE],
    // single
    ['bytes=0-0', 100, single(0, 0)],
    ['bytes=0-99', 100, single(0, 99)],
    ['bytes=0-', 100, single(0, 99)],
    ['bytes=10-19', 100, single(10, 19)],
    ['bytes=99-', 100, single(99, 99)],
    ['bytes=50-1000', 100, single(50, 99)],
    ['bytes=0-99999999999999999999999', 100, single(0, 99)],
    ['bytes=-1', 100, single(99, 99)],
    ['bytes=-10', 100, single(90, 99)],
    ['bytes=-100', 100, single(0, 99)],
    ['bytes=-1000', 100, single(0, 99)],
    ['bytes=007-009', 100, single(7, 9)],
    ['BYTES=0-1', 100, single(0, 1)],
    ['Bytes=0-1', 100, single(0, 1)],
    ['  bytes=0-1  ', 100, single(0, 1)],
    ['bytes= 0-1 ', 100, single(0, 1)],
    ['bytes=0-1,', 100, single(0, 1)],
    ['bytes=,0-1', 100, single(0, 1)],
    // unsatisfiable: valid syntax, nothing overlaps
    ['bytes=100-', 50, UNSAT],
    ['bytes=50-', 50, UNSAT],
    ['bytes=50-60', 50, UNSAT],
    ['bytes=99999999999999999999-', 50, UNSAT],
    ['bytes=-0', 50, UNSAT],
    ['bytes=-000', 50, UNSAT],
    ['bytes=-0,60-70', 50, UNSAT],
    // unsatisfiable specs next to satisfiable ones are dropped
    ['bytes=0-9,100-200', 50, single(0, 9)],
    ['bytes=-0,0-9', 50, single(0, 9)],
    // empty object
    ['bytes=0-', 0, UNSAT],
    ['bytes=0-0', 0, UNSAT],
    ['bytes=-0', 0, UNSAT],
    ['bytes=-5', 0, NONE],
    ['bytes=0-0,-5', 0, NONE],
    ['items=0-0', 0, NONE],
    // one-byte object
    ['bytes=0-0', 1, single(0, 0)],
    ['bytes=-1', 1, single(0, 0)],
    ['bytes=1-', 1, UNSAT],
  ])('%j on %d bytes', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });

  it.each<[string, number, RangeResult]>([
    ['bytes=0-0,-1', 100, { kind: 'multiple', ranges: [{ start: 0, end: 0 }, { start: 99, end: 99 }] }],
    ['bytes=0-0 , -1', 100, { kind: 'multiple', ranges: [{ start: 0, end: 0 }, { start: 99, end: 99 }] }],
    ['bytes=0-0,\t-1', 100, { kind: 'multiple', ranges: [{ start: 0, end: 0 }, { start: 99, end: 99 }] }],
    // sorted by start
    ['bytes=50-59,0-9', 100, { kind: 'multiple', ranges: [{ start: 0, end: 9 }, { start: 50, end: 59 }] }],
    ['bytes=0-1,3-4,6-7', 100, {
      kind: 'multiple',
      ranges: [{ start: 0, end: 1 }, { start: 3, end: 4 }, { start: 6, end: 7 }],
    }],
  ])('%j on %d bytes → multiple', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });

  it.each<[string, number, RangeResult]>([
    ['bytes=0-10,5-20', 100, single(0, 20)],
    ['bytes=5-20,0-10', 100, single(0, 20)],
    ['bytes=0-9,10-19', 100, single(0, 19)],
    ['bytes=0-0,0-0,0-0', 100, single(0, 0)],
    ['bytes=0-,-1', 100, single(0, 99)],
    ['bytes=0-49,-50', 100, single(0, 99)],
    ['bytes=0-0,-1', 2, single(0, 1)],
    ['bytes=10-20,12-15', 100, single(10, 20)],
  ])('%j on %d bytes coalesces to one range', (header, size, expected) => {
    expect(parseRange(header, size)).toEqual(expected);
  });

  it(`ignores more than MAX_RANGES (${MAX_RANGES}) specs`, () => {
    const specs = (n: number) => Array.from({ length: n }, (_, i) => `${i * 10}-${i * 10 + 1}`).join(',');
    expect(parseRange(`bytes=${specs(MAX_RANGES)}`, 10_000).kind).toBe('multiple');
    expect(parseRange(`bytes=${specs(MAX_RANGES + 1)}`, 10_000)).toEqual(NONE);
    // Overlapping abuse (same range many times) is capped too, and never costs more than one range.
    expect(parseRange(`bytes=${Array(MAX_RANGES).fill('0-').join(',')}`, 10)).toEqual(single(0, 9));
    expect(parseRange(`bytes=${Array(MAX_RANGES + 1).fill('0-').join(',')}`, 10)).toEqual(NONE);
  });

  it('does not count empty list members against MAX_RANGES', () => {
    expect(parseRange(`bytes=0-1${','.repeat(100)}`, 10)).toEqual(single(0, 1));
  });

  it(`ignores headers longer than ${MAX_RANGE_HEADER_CHARS} characters`, () => {
    const header = `bytes=0-1${' '.repeat(MAX_RANGE_HEADER_CHARS)}`;
    expect(parseRange(header, 10)).toEqual(NONE);
  });

  it('handles large objects beyond 32-bit offsets', () => {
    const size = 10 * 2 ** 32;
    expect(parseRange('bytes=42949672950-', size)).toEqual(single(42949672950, size - 1));
    expect(parseRange('bytes=42949672960-', size)).toEqual(UNSAT);
    expect(parseRange('bytes=-1', size)).toEqual(single(size - 1, size - 1));
  });

  it('compares huge positions exactly when validating last >= first', () => {
    // Both round to 1e22 as floats; the string comparison still sees last < first.
    expect(parseRange('bytes=10000000000000000000001-10000000000000000000000', 10)).toEqual(NONE);
    expect(parseRange('bytes=10000000000000000000000-10000000000000000000001', 10)).toEqual(UNSAT);
  });
});

describe('coalesceRanges', () => {
  it.each([
    [[], []],
    [[{ start: 0, end: 5 }], [{ start: 0, end: 5 }]],
    [[{ start: 0, end: 5 }, { start: 6, end: 9 }], [{ start: 0, end: 9 }]],
    [[{ start: 0, end: 5 }, { start: 7, end: 9 }], [{ start: 0, end: 5 }, { start: 7, end: 9 }]],
    [[{ start: 7, end: 9 }, { start: 0, end: 8 }], [{ start: 0, end: 9 }]],
    [[{ start: 0, end: 9 }, { start: 2, end: 3 }], [{ start: 0, end: 9 }]],
    [
      [{ start: 20, end: 29 }, { start: 0, end: 4 }, { start: 5, end: 10 }, { start: 40, end: 41 }],
      [{ start: 0, end: 10 }, { start: 20, end: 29 }, { start: 40, end: 41 }],
    ],
  ])('%j → %j', (input, expected) => {
    const copy = structuredClone(input);
    expect(coalesceRanges(input)).toEqual(expected);
    expect(input).toEqual(copy);
  });
});

describe('Content-Range values', () => {
  it.each([
    [0, 0, 1, 'bytes 0-0/1'],
    [0, 99, 100, 'bytes 0-99/100'],
    [99, 99, 100, 'bytes 99-99/100'],
    [42949672960, 42949672969, 42949672970, 'bytes 42949672960-42949672969/42949672970'],
  ])('contentRange(%d, %d, %d) = %s', (start, end, size, expected) => {
    expect(contentRange(start, end, size)).toBe(expected);
  });

  it.each([
    [0, 'bytes */0'],
    [50, 'bytes */50'],
  ])('unsatisfiedRange(%d) = %s', (size, expected) => {
    expect(unsatisfiedRange(size)).toBe(expected);
  });
});

describe('ifRangeMatches', () => {
  const lastModifiedMs = Date.UTC(2024, 0, 15, 10, 30, 0, 0);
  const meta = { etag: '"abc"', lastModifiedMs };
  const httpDate = new Date(lastModifiedMs).toUTCString();

  it.each<[string | undefined, { etag: string; lastModifiedMs?: number }, boolean]>([
    [undefined, meta, true],
    ['"abc"', meta, true],
    [' "abc" ', meta, true],
    ['"abd"', meta, false],
    ['"ABC"', meta, false],
    // weak tags never match, on either side
    ['W/"abc"', meta, false],
    ['"abc"', { etag: 'W/"abc"', lastModifiedMs }, false],
    ['W/"abc"', { etag: 'W/"abc"', lastModifiedMs }, false],
    // a list is not a valid If-Range
    ['"abc", "def"', meta, false],
    ['abc', meta, false],
    ['*', meta, false],
    ['', meta, false],
    // dates: exact, at second precision
    [httpDate, meta, true],
    ['Mon, 15 Jan 2024 10:30:00 GMT', meta, true],
    ['Mon, 15 Jan 2024 10:30:00 GMT', { etag: '"abc"', lastModifiedMs: lastModifiedMs + 999 }, true],
    ['Mon, 15 Jan 2024 10:30:01 GMT', meta, false],
    ['Mon, 15 Jan 2024 10:29:59 GMT', meta, false],
    ['Monday, 15-Jan-24 10:30:00 GMT', meta, true],
    ['Mon Jan 15 10:30:00 2024', meta, true],
    ['Mon, 15 Jan 2024 10:30:00 GMT', { etag: '"abc"' }, false],
    ['2024-01-15T10:30:00Z', meta, false],
    ['not a date', meta, false],
  ])('%j → %s', (header, m, expected) => {
    expect(ifRangeMatches(header, m)).toBe(expected);
  });
});
