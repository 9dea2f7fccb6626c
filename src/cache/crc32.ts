/**
 * CRC-32 (IEEE 802.3: the value node:zlib's `crc32` gives, so the disk format is unchanged) for
 * the disk tier's block checksums, which every disk hit computes over every byte it serves.
 *
 * @node-rs/crc32 (napi-rs, the crc32fast crate: carry-less multiply on x86-64, PMULL on arm64)
 * took 9.7 µs per 64 KiB block on this project's machine, node:zlib 25.7 µs: 0.16 ms against
 * 0.41 ms of checksumming for a 1 MiB disk hit. Where its prebuilt binding does not load (a
 * platform it has none for), or gives a wrong check value, node:zlib's is used instead.
 */
import { createRequire } from 'node:module';
import { crc32 as zlibCrc32 } from 'node:zlib';

export type Crc32 = (data: Buffer, value?: number) => number;

/** The standard check value: CRC-32 of the ASCII bytes "123456789". */
const CHECK = 0xcbf43926;

function load(): { crc32: Crc32; impl: string } {
  try {
    const native = (createRequire(import.meta.url)('@node-rs/crc32') as { crc32: Crc32 }).crc32;
    if (native(Buffer.from('123456789')) === CHECK && native(Buffer.from('56789'), native(Buffer.from('1234'))) === CHECK) {
      return { crc32: native, impl: '@node-rs/crc32' };
    }
  } catch {
    // no binding for this platform: node:zlib below
  }
  return { crc32: zlibCrc32, impl: 'node:zlib' };
}

const chosen = load();

/** CRC-32 of `data`, continuing from `value` (the CRC of the bytes before it) when given. */
export const crc32: Crc32 = chosen.crc32;

/** Which implementation `crc32` is. */
export const crc32Impl: string = chosen.impl;
