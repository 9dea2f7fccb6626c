/**
 * `GET`, `HEAD` and `OPTIONS /:bucket_id/*path` (PUT is in put-object.ts): parse the path, answer
 * CORS, authenticate, then ask the core. Preconditions and Range are decided once the object's
 * metadata is known, inside the core's read, so a 304, 412 or 416 never costs a body fetch from
 * the store, and a range of a large object is a ranged store GET.
 */
import type { Context, MiddlewareHandler } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import type { AuthResult } from '../../auth/middleware.js';
import type { CachedMeta } from '../../cache/types.js';
import type { ObjectService, RangePicker } from '../../core/object-service.js';
import { GatewayError, RangeNotSatisfiableError } from '../../errors.js';
import type { Logger } from '../../metrics/log.js';
import { evaluatePreconditions, notModifiedHeaders } from '../conditional.js';
import { corsHeaders, preflight } from '../cors.js';
import { X_CG_STATUS } from '../object-headers.js';
import { ageHeader, type ResponseHeaderBuilder, type StoreHttpOptions } from '../response-headers.js';
import { parseObjectPath, rawPathOf, type ObjectPath } from '../object-path.js';
import type { ResponseNote } from '../access-log.js';
import { contentRange, ifRangeMatches, parseRange } from '../range.js';
import { logStreamErrors, sendBuffer, sendHead, sendLent, sendStream, setResponseHeader } from '../send.js';
import { putObject } from './put-object.js';

export type ObjectEnv = {
  Bindings: HttpBindings;
  Variables: { objectPath: ObjectPath; auth: AuthResult; requestId: string; responseNote: ResponseNote };
};

export type { StoreHttpOptions } from '../response-headers.js';

export interface ObjectRouteDeps {
  service: ObjectService;
  log: Logger;
  /** `limits.max_upload_size`. */
  maxUploadBytes: number;
  storeOptions: ReadonlyMap<string, StoreHttpOptions>;
  /** The header builder shared with the hit fast path. */
  headers: ResponseHeaderBuilder;
}

const ALLOWED_METHODS = 'GET, HEAD, PUT, DELETE, OPTIONS';
const PREFETCH_VALUES: Readonly<Record<string, boolean>> = { true: true, '1': true, false: false, '0': false };

/** Refuse methods the object routes do not serve, before auth, with an `Allow` header. */
export function objectMethodsMiddleware(): MiddlewareHandler<ObjectEnv> {
  return async function allowObjectMethods(c, next) {
    const m = c.req.method;
    if (m !== 'GET' && m !== 'HEAD' && m !== 'PUT' && m !== 'DELETE' && m !== 'OPTIONS') {
      c.header('allow', ALLOWED_METHODS);
      throw new GatewayError('GW_ERR_METHOD_NOT_ALLOWED', `method ${m} is not allowed here`);
    }
    await next();
  };
}

/** Parse the object path from the raw request target into `c.var.objectPath`. */
export function parseObjectPathMiddleware(): MiddlewareHandler<ObjectEnv> {
  return async function parseObjectPathFromTarget(c, next) {
    // The adapter's URL is normalised (`..` resolved); the raw target is what the client sent.
    const target = c.env?.incoming?.url ?? new URL(c.req.url).pathname;
    c.set('objectPath', parseObjectPath(rawPathOf(target)));
    await next();
  };
}

/**
 * Per-store CORS: a preflight is answered here, without auth; every other response (errors
 * included) carries the CORS headers for an allowed origin, and none for any other.
 */
export function corsMiddleware(storeOptions: ReadonlyMap<string, StoreHttpOptions>): MiddlewareHandler<ObjectEnv> {
  return async function applyCors(c, next) {
    const config = storeOptions.get(c.get('objectPath').bucket)?.cors;
    const origin = c.req.header('origin');
    if (c.req.method === 'OPTIONS') {
      const result = preflight(config, {
        origin,
        requestMethod: c.req.header('access-control-request-method'),
        requestHeaders: c.req.header('access-control-request-headers'),
      });
      if (!result) {
        c.header('allow', ALLOWED_METHODS);
        return c.body(null, 204);
      }
      if (result.status === 403) throw new GatewayError('GW_ERR_FORBIDDEN', result.reason);
      return c.body(null, 204, result.headers);
    }
    for (const [name, value] of Object.entries(corsHeaders(config, origin))) setResponseHeader(c, name, value);
    await next();
  };
}

/** A 304: not an error, but it ends the read as soon as the metadata is known. */
class NotModified {
  constructor(readonly meta: CachedMeta) {}
}

/** The GET/HEAD handler. */
export function createObjectHandler(deps: ObjectRouteDeps) {
  const { service, log } = deps;
  // The client left, or the store failed after headers went out: nothing more to tell the client.
  const onStreamError = logStreamErrors(log);
  return async function serveObject(c: Context<ObjectEnv>): Promise<Response> {
    const { bucket, key } = c.get('objectPath');
    if (c.req.method === 'PUT') return putObject(c, deps);
    if (c.req.method === 'DELETE') {
      // The object in the store and every cached copy; 204 also when there was none.
      await service.delete(bucket, key);
      return c.body(null, 204);
    }
    if (c.req.method === 'HEAD') return headObject(c, deps);

    // A link's overrides are checked before anything is fetched: a refusal costs no store call.
    deps.headers.checkOverrides(c.get('auth'));
    let read;
    try {
      read = await service.read(bucket, key, { pick: decideRange(c), startHint: rangeStartHint(c.req.header('range')) });
    } catch (err) {
      if (err instanceof NotModified) {
        c.set('responseNote', { cache: 'hit', bytes: 0 });
        return sendHead(c, 304, notModifiedHeaders(responseHeaders(c, deps, err.meta, 'hit'), [X_CG_STATUS]));
      }
      throw err;
    }
    // From here this handler owns the body: it is handed to the response, or destroyed.
    try {
      const headers = responseHeaders(c, deps, read.meta, read.cache, read.staleAgeSec);
      let status: 200 | 206 = 200;
      let bytes = read.meta.size;
      if (read.range) {
        status = 206;
        bytes = read.range.end - read.range.start + 1;
        headers['content-range'] = contentRange(read.range.start, read.range.end, read.meta.size);
        headers['content-length'] = String(bytes);
      }
      c.set('responseNote', { cache: read.cache, bytes });
      if (read.body.kind === 'buffer') {
        const { buffer, release } = read.body;
        return release ? sendLent(c, status, headers, buffer, release) : sendBuffer(c, status, headers, buffer);
      }
      return sendStream(c, status, headers, read.body.stream, onStreamError);
    } catch (err) {
      if (read.body.kind === 'stream') read.body.stream.destroy();
      else read.body.release?.();
      throw err;
    }
  };
}

/**
 * RFC 9110 §13.2.2 then §14.2: preconditions first (304 / 412), then Range with If-Range; a
 * satisfiable single range is served as 206, several ranges as the whole object (200), none as 416.
 */
function decideRange(c: Context<ObjectEnv>): RangePicker {
  return (meta) => {
    checkPreconditions(c, meta);
    const header = c.req.header('range');
    if (header === undefined || !ifRangeMatches(c.req.header('if-range'), meta)) return undefined;
    const r = parseRange(header, meta.size);
    if (r.kind === 'unsatisfiable') throw new RangeNotSatisfiableError(meta.size);
    return r.kind === 'single' ? { start: r.start, end: r.end } : undefined;
  };
}

/**
 * The first byte a Range header asks for, readable before the object's size is known: the first
 * GET of an unknown object then fetches the slice covering it. Suffix ranges (`bytes=-N`) and
 * anything unusual give no hint (the object's start).
 */
function rangeStartHint(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d{1,15})\s*-/i.exec(header);
  return m ? Number(m[1]) : undefined;
}

function checkPreconditions(c: Context<ObjectEnv>, meta: CachedMeta): void {
  const result = evaluatePreconditions(
    {
      method: c.req.method,
      ifMatch: c.req.header('if-match'),
      ifNoneMatch: c.req.header('if-none-match'),
      ifModifiedSince: c.req.header('if-modified-since'),
      ifUnmodifiedSince: c.req.header('if-unmodified-since'),
    },
    meta,
  );
  if (result === 'not-modified') throw new NotModified(meta);
  if (result === 'precondition-failed') throw new GatewayError('GW_ERR_PRECONDITION_FAILED', 'precondition failed');
}

/** HEAD: metadata only; `?prefetch=1` also warms the cache in the background (cachegate's flag). */
async function headObject(c: Context<ObjectEnv>, deps: ObjectRouteDeps): Promise<Response> {
  const { bucket, key } = c.get('objectPath');
  const prefetchParam = c.req.query('prefetch');
  const prefetch = prefetchParam === undefined ? false : PREFETCH_VALUES[prefetchParam.toLowerCase()];
  if (prefetch === undefined) throw new GatewayError('GW_ERR_BAD_REQUEST', 'invalid query: prefetch must be true, false, 1 or 0');
  deps.headers.checkOverrides(c.get('auth'));
  // With prefetch, the core warms the object slice by slice (an object too large to cache is not fetched).
  const s = await deps.service.stat(bucket, key, { prefetch });
  c.set('responseNote', { cache: s.cache, bytes: 0 });
  try {
    checkPreconditions(c, s.meta);
  } catch (err) {
    if (err instanceof NotModified) return sendHead(c, 304, notModifiedHeaders(responseHeaders(c, deps, s.meta, s.cache), [X_CG_STATUS]));
    throw err;
  }
  return sendHead(c, 200, responseHeaders(c, deps, s.meta, s.cache, s.staleAgeSec));
}

/** Everything a 200 carries, from the header builder the fast path shares; a copy to add to. */
function responseHeaders(c: Context<ObjectEnv>, deps: ObjectRouteDeps, meta: CachedMeta, cache: 'hit' | 'miss', staleAgeSec?: number): Record<string, string> {
  // The route's CORS middleware adds the CORS headers to every answer, errors included.
  return { ...deps.headers.build(meta, cache, c.get('auth'), c.get('objectPath').bucket, undefined), ...ageHeader(staleAgeSec) };
}
