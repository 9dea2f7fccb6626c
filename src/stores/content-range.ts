/**
 * Checking a store's answer to a ranged read (RFC 9110 §14.4): the bytes must be the ones asked
 * for. A backend that answers another range (s3rver sends the whole object for `bytes=0-0`)
 * must not have its bytes served as the requested range.
 */
import type { Readable } from 'node:stream';
import { StoreError } from '../errors.js';
import type { ByteRange } from './types.js';

/** The full object size from `Content-Range: bytes a-b/size`; throws (destroying `body`) on a mismatch. */
export function checkContentRange(header: string | undefined, asked: ByteRange, body: Readable, storeId: string): number {
  const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header ?? '');
  if (!m || Number(m[1]) !== asked.start || Number(m[2]) !== Math.min(asked.end, Number(m[3]) - 1)) {
    body.destroy();
    throw new StoreError(storeId, 'get', new Error(`ranged read for bytes ${asked.start}-${asked.end} answered with '${header ?? 'no Content-Range'}'`), 'bad_range');
  }
  return Number(m[3]);
}
