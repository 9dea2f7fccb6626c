/**
 * `GET` and `HEAD /:bucket_id/*path`: parse the path, authenticate, then ask the core.
 */
import { Readable } from 'node:stream';
import type { Context, MiddlewareHandler } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import { GatewayError } from '../../errors.js';
import type { AuthResult } from '../../auth/middleware.js';
import type { ObjectService } from '../../core/object-service.js';
import type { Logger } from '../../metrics/log.js';
import { objectHeaders } from '../object-headers.js';
import { parseObjectPath, rawPathOf, type ObjectPath } from '../object-path.js';
import { sendBuffer, sendHead, sendStream } from '../send.js';

export type ObjectEnv = {
  Bindings: HttpBindings;
  Variables: { objectPath: ObjectPath; auth: AuthResult };
};

export interface ObjectRouteDeps {
  service: ObjectService;
  log: Logger;
  /** `limits.max_upload_size`. */
  maxUploadBytes: number;
}

const ALLOWED_METHODS = 'GET, HEAD, PUT';

/** Parse the object path from the raw request target into `c.var.objectPath`. */
export function parseObjectPathMiddleware(): MiddlewareHandler<ObjectEnv> {
  return async function parseObjectPathFromTarget(c, next) {
    // The adapter's URL is normalised (`..` resolved); the raw target is what the client sent.
    const target = c.env?.incoming?.url ?? new URL(c.req.url).pathname;
    c.set('objectPath', parseObjectPath(rawPathOf(target)));
    await next();
  };
}

/** Refuse methods the object routes do not serve, before auth, with an `Allow` header. */
export function objectMethodsMiddleware(): MiddlewareHandler<ObjectEnv> {
  return async function allowObjectMethods(c, next) {
    const m = c.req.method;
    if (m !== 'GET' && m !== 'HEAD' && m !== 'PUT') {
      c.header('allow', ALLOWED_METHODS);
      throw new GatewayError('GW_ERR_METHOD_NOT_ALLOWED', `method ${m} is not allowed here`);
    }
    await next();
  };
}

/** The object handler. */
export function createObjectHandler(deps: ObjectRouteDeps) {
  const { service, log } = deps;
  const onStreamError = (err: Error) => {
    // The client left, or the store failed after headers went out: nothing more to tell the client.
    if ((err as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') log.warn({ err: err.message }, 'stream ended early');
  };
  return async function serveObject(c: Context<ObjectEnv>): Promise<Response> {
    const { bucket, key } = c.get('objectPath');
    if (c.req.method === 'PUT') return putObject(c, deps);
    if (c.req.method === 'HEAD') {
      const s = await service.stat(bucket, key);
      return sendHead(c, 200, objectHeaders(s.meta, s.cache));
    }
    const r = await service.read(bucket, key);
    const headers = objectHeaders(r.meta, r.cache);
    if (r.body.kind === 'buffer') return sendBuffer(c, 200, headers, r.body.buffer);
    return sendStream(c, 200, headers, r.body.stream, onStreamError);
  };
}

/**
 * PUT: check the announced length and the link's claims before any byte is read, then stream the
 * body to the store. Answers 200 with the stored object's ETag, as cachegate does (plus the ETag).
 */
async function putObject(c: Context<ObjectEnv>, deps: ObjectRouteDeps): Promise<Response> {
  const { bucket, key } = c.get('objectPath');
  const auth = c.get('auth');
  const claims = auth.kind === 'link' ? auth.claims : undefined;
  const contentLength = parseContentLength(c.req.header('content-length'));
  const contentType = c.req.header('content-type')?.trim() || undefined;

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
