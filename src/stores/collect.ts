/**
 * Reading a small body of known length into one buffer, for stores whose single-request upload
 * must not start before the whole body is here: the request is then retryable, and a client that
 * gives up halfway never leaves a truncated object behind.
 */
import type { Readable } from 'node:stream';

/** Read exactly `length` bytes from `body`; rejects if it ends early, sends more, or fails. */
export async function collectExact(body: Readable, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let filled = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (filled + chunk.length > length) {
      body.destroy();
      throw new Error(`body is longer than its declared ${length} bytes`);
    }
    chunk.copy(buf, filled);
    filled += chunk.length;
  }
  if (filled !== length) throw new Error(`body ended after ${filled} of ${length} bytes`);
  return buf;
}
