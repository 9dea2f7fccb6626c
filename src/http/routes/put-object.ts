/**
 * `PUT /:bucket_id/*path`: check the announced length and the link's claims before any byte is
 * read, then stream the Node request body to the store (never `c.req.raw.body`).
 */
import { Readable } from 'node:stream';
import type { Context } from 'hono';
import { GatewayError } from '../../errors.js';
import { sendContinue } from '../request-gate.js';
import type { ObjectEnv, ObjectRouteDeps } from './objects.js';

/**
 * PUT: check the announced length and the link's claims before any byte is read, then stream the
 * body to the store. Answers 200 with the stored object's ETag, as cachegate does (plus the ETag).
 */
export async function putObject(c: Context<ObjectEnv>, deps: ObjectRouteDeps): Promise<Response> {
  const { bucket, key } = c.get('objectPath');
  const auth = c.get('auth');
  const claims = auth.kind === 'link' ? auth.claims : undefined;
  const contentLength = parseContentLength(c.req.header('content-length'));
  const contentType = c.req.header('content-type')?.trim() || undefined;
  // RFC 9112 §6.3 reads a request with neither Content-Length nor chunked coding as empty, but
  // S3 answers 411 MissingContentLength, and so does this gateway: a client that left out the
  // length (an HTTP/1.0 client, `curl -H 'Content-Length:'`) must not wipe an object. An explicit
  // `Content-Length: 0` is a valid empty PUT. (The request gate lets only `chunked` through.)
  if (contentLength === undefined && c.req.header('transfer-encoding') === undefined) {
    throw new GatewayError('GW_ERR_LENGTH_REQUIRED', 'a PUT needs Content-Length or chunked Transfer-Encoding');
  }

  // Link claims (optional; enforced when present) are checked before the body is touched.
  if (claims?.ct !== undefined && contentType?.toLowerCase() !== claims.ct.toLowerCase()) {
    throw new GatewayError('GW_ERR_FORBIDDEN', `link requires Content-Type ${claims.ct}`);
  }
  if (claims?.len !== undefined) {
    if (contentLength === undefined) throw new GatewayError('GW_ERR_LENGTH_REQUIRED', `link requires Content-Length ${claims.len}`);
    if (contentLength !== claims.len) throw new GatewayError('GW_ERR_FORBIDDEN', `link requires Content-Length ${claims.len}`);
  }
  const maxBytes = Math.min(deps.maxUploadBytes, claims?.max_len ?? Infinity);
  if (contentLength !== undefined && contentLength > maxBytes) {
    throw new GatewayError('GW_ERR_PAYLOAD_TOO_LARGE', `body of ${contentLength} bytes exceeds the limit of ${maxBytes} bytes`);
  }
  deps.service.store(bucket); // an unknown bucket is a 404 before the body is read

  // The Node request itself: never c.req.raw.body (a Web stream) on this path.
  const body = c.env?.incoming ?? (c.req.raw.body ? Readable.fromWeb(c.req.raw.body as never) : Readable.from([]));
  // Every check passed: a client waiting on `Expect: 100-continue` may send its body now.
  sendContinue(c.env?.incoming, c.env?.outgoing);
  const result = await deps.service.write(bucket, key, body, { contentType, contentLength, maxBytes });
  if (result.overwrote) deps.log.warn({ bucket, key, bytes: result.meta.size }, 'object overwritten');
  return c.body(null, 200, { etag: result.meta.etag });
}

/** RFC 9110 §8.6: Content-Length is 1*DIGIT. A negative or malformed one is a 400. */
function parseContentLength(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const v = header.trim();
  if (!/^\d{1,16}$/.test(v)) throw new GatewayError('GW_ERR_BAD_REQUEST', 'malformed Content-Length');
  return Number(v);
}
