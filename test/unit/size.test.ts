import { describe, expect, it } from 'vitest';

import { parseDurationMs, parseSize } from '../../src/config/size.js';

describe('parseSize', () => {
  it.each<[string | number, number]>([
    ['0', 0],
    ['1048576', 1_048_576],
    [4096, 4096],
    ['1k', 1e3],
    ['1kb', 1e3],
    ['1m', 1e6],
    ['1mb', 1e6],
    ['1g', 1e9],
    ['1gb', 1e9],
    ['1GB', 1e9],
    ['2t', 2e12],
    ['2tb', 2e12],
    ['1ki', 2 ** 10],
    ['1kib', 2 ** 10],
    ['1mi', 2 ** 20],
    ['512MiB', 512 * 2 ** 20],
    ['1gi', 2 ** 30],
    ['1GiB', 2 ** 30],
    ['1gib', 2 ** 30],
    ['3ti', 3 * 2 ** 40],
    ['3TiB', 3 * 2 ** 40],
    ['1.5 KiB', 1536],
    [' 10 mb ', 10_000_000],
    ['64 MiB', 64 * 2 ** 20],
  ])('parses %j as %d bytes', (input, bytes) => {
    expect(parseSize(input)).toBe(bytes);
  });

  it('treats decimal and binary prefixes differently', () => {
    expect(parseSize('1MB')).toBe(1_000_000);
    expect(parseSize('1MiB')).toBe(1_048_576);
  });

  it('returns a whole number of bytes for fractional sizes', () => {
    expect(Number.isInteger(parseSize('0.3 KiB'))).toBe(true);
  });

  it.each<string | number>(['abc', '-1', '1XB', '', '   ', 'MiB', '1.2.3GB', '1 0MB', -1, 1.5, Number.NaN])(
    'rejects %j with a one-line message',
    (input) => {
      let caught: unknown;
      try {
        parseSize(input);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(Error);
      const message = (caught as Error).message;
      expect(message).toMatch(/invalid size/);
      expect(message).not.toContain('\n');
    },
  );

  it('names the offending value in the message', () => {
    expect(() => parseSize('1XB')).toThrow(/'1XB'/);
  });

  it('rejects sizes too large to be a safe integer', () => {
    expect(() => parseSize('99999999999 TiB')).toThrow(/too large/);
  });
});

describe('parseDurationMs', () => {
  it.each<[string | number, number]>([
    [0, 0],
    [30, 30_000],
    [1.5, 1500],
    ['500ms', 500],
    ['30s', 30_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['45', 45_000],
    [' 30 s ', 30_000],
    ['1.5s', 1500],
    ['2M', 120_000],
    ['500MS', 500],
  ])('parses %j as %d ms', (input, ms) => {
    expect(parseDurationMs(input)).toBe(ms);
  });

  it.each<string | number>(['abc', '', '-5s', '10x', '1w', 's', -1, Number.POSITIVE_INFINITY, Number.NaN])(
    'rejects %j with a one-line message',
    (input) => {
      let caught: unknown;
      try {
        parseDurationMs(input);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(Error);
      const message = (caught as Error).message;
      expect(message).toMatch(/invalid duration/);
      expect(message).not.toContain('\n');
    },
  );
});
