/**
 * Large test objects without holding them: the bytes of object `seed` at any offset are an
 * AES-256-CTR keystream, so a test can write a 1 GiB object as a stream and check any range of
 * a response (or its hash) by computing the expected bytes on the fly.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { Readable } from 'node:stream';

const KEY = Buffer.alloc(32, 0x5a);
const CHUNK_BYTES = 1024 * 1024;

/** Bytes `start .. start+length` of object `seed`. */
export function bytesAt(seed: number, start: number, length: number): Buffer {
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(seed >>> 0, 0);
  iv.writeBigUInt64BE(BigInt(Math.floor(start / 16)), 8);
  const skip = start % 16;
  return createCipheriv('aes-256-ctr', KEY, iv).update(Buffer.alloc(length + skip)).subarray(skip);
}

/** The whole object `seed` of `size` bytes, as a stream of 1 MiB chunks. */
export function objectStream(seed: number, size: number): Readable {
  return Readable.from(
    (function* () {
      for (let at = 0; at < size; at += CHUNK_BYTES) yield bytesAt(seed, at, Math.min(CHUNK_BYTES, size - at));
    })(),
  );
}

/** sha256 of the whole object `seed` of `size` bytes. */
export function objectSha(seed: number, size: number): string {
  const h = createHash('sha256');
  for (let at = 0; at < size; at += CHUNK_BYTES) h.update(bytesAt(seed, at, Math.min(CHUNK_BYTES, size - at)));
  return h.digest('hex');
}
