import { randomBytes } from 'node:crypto';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32, crc32Impl } from '../../src/cache/crc32.js';

describe('crc32 for disk blocks', () => {
  it.runIf(process.platform === 'linux' && process.arch === 'x64')('loads the native implementation on linux x64 (CI, the image)', () => {
    expect(crc32Impl).toBe('@node-rs/crc32');
  });

  it('gives node:zlib\'s value for every length and split, so entries written by either read back with the other', () => {
    for (const n of [0, 1, 3, 15, 16, 17, 63, 64, 65, 4095, 65_536, 65_537, 1_000_003]) {
      const data = randomBytes(n);
      expect(crc32(data), `${n} bytes`).toBe(zlibCrc32(data));
      const cut = Math.floor(n / 3);
      expect(crc32(data.subarray(cut), crc32(data.subarray(0, cut))), `${n} bytes split at ${cut}`).toBe(zlibCrc32(data));
      expect(crc32(data.subarray(cut), zlibCrc32(data.subarray(0, cut))), `${n} bytes, zlib then native`).toBe(zlibCrc32(data));
    }
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  });

  it('checks views into a larger buffer by their own bytes only', () => {
    const big = randomBytes(200_000);
    const view = big.subarray(12_345, 12_345 + 65_536);
    expect(crc32(view)).toBe(zlibCrc32(Buffer.from(view)));
  });
});
