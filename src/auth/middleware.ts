/**
 * Authentication for object routes: a bearer token or a signed link (`?sig=`). Runs after the
 * object path is parsed, because a link is scoped to a bucket, a path and a method.
 */
import type { MiddlewareHandler } from 'hono';
import { GatewayError } from '../errors.js';
import type { LinkClaims } from '../sign/index.js';
import type { ObjectPath } from '../http/object-path.js';
import { bearerFromHeader, type BearerVerifier } from './bearer.js';

/** Who a request was authenticated as. */
export type AuthResult = { kind: 'bearer' } | { kind: 'link'; claims: LinkClaims };

/** Verifies a `sig` value for a request; filled in by the links module. */
export type LinkVerifier = (sig: string, request: { method: string; bucket: string; key: string }) => AuthResult;

export interface AuthOptions {
  bearer: BearerVerifier;
  links?: LinkVerifier;
  /** Called for every refused request (metrics). */
  onFailure?: (method: string) => void;
}

/** The middleware; expects `c.var.objectPath` and sets `c.var.auth`. */
export function createAuthMiddleware(options: AuthOptions): MiddlewareHandler<{ Variables: { objectPath: ObjectPath; auth: AuthResult } }> {
  return async function authenticate(c, next) {
    const { bucket, key } = c.get('objectPath');
    const method = c.req.method;
    try {
      c.set('auth', check(c.req.header('authorization'), c.req.query('sig'), { method, bucket, key }, options));
    } catch (err) {
      options.onFailure?.(method);
      throw err;
    }
    await next();
  };
}

function check(
  authorization: string | undefined,
  sig: string | undefined,
  request: { method: string; bucket: string; key: string },
  options: AuthOptions,
): AuthResult {
  if (authorization !== undefined) {
    const token = bearerFromHeader(authorization);
    if (token === undefined) throw new GatewayError('GW_ERR_UNAUTHORIZED', 'malformed Authorization header: expected Bearer <token>');
    if (options.bearer(token)) return { kind: 'bearer' };
    // A wrong bearer token is refused even when a link is also present: no fallback guessing.
    throw new GatewayError('GW_ERR_UNAUTHORIZED', 'invalid bearer token');
  }
  if (sig !== undefined) {
    if (!options.links) throw new GatewayError('GW_ERR_UNAUTHORIZED', 'signed links are not enabled (no public key configured)');
    return options.links(sig, request);
  }
  throw new GatewayError('GW_ERR_UNAUTHORIZED', 'missing credentials: send Authorization: Bearer <token> or a signed link');
}
