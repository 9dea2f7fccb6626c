/**
 * `GET` and `HEAD /:bucket_id/*path`: parse the path, authenticate, then ask the core.
 */
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
}

const ALLOWED_METHODS = 'GET, HEAD';

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
    if (m !== 'GET' && m !== 'HEAD') {
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
