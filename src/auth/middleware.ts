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
export function createAuthMiddleware(
  options: AuthOptions,
): MiddlewareHandler<{ Bindings: { incoming?: { socket: object } }; Variables: { objectPath: ObjectPath; auth: AuthResult } }> {
  return async function authenticateRequest(c, next) {
    const { bucket, key } = c.get('objectPath');
    const method = c.req.method;
    try {
      c.set('auth', authenticate(options, c.req.header('authorization'), c.req.query('sig'), { method, bucket, key }, c.env?.incoming?.socket));
    } catch (err) {
      options.onFailure?.(method);
      throw err;
    }
    await next();
  };
}

/** A connection that remembers the Authorization header it last proved valid. */
type MemoSocket = { [VERIFIED_AUTHORIZATION]?: string };
const VERIFIED_AUTHORIZATION = Symbol('cachegate.verifiedAuthorization');
const BEARER: AuthResult = { kind: 'bearer' };

/**
 * Who the request is: the one credential check, shared by the route (through the middleware)
 * and the hit fast path. Throws GW_ERR_UNAUTHORIZED (401) or GW_ERR_FORBIDDEN (403) with the
 * reason. `connection`, when given, remembers a bearer header it proved.
 */
export function authenticate(
  options: AuthOptions,
  authorization: string | undefined,
  sig: string | undefined,
  request: { method: string; bucket: string; key: string },
  connection?: object,
): AuthResult {
  if (authorization !== undefined) {
    // A keep-alive connection that already proved this exact header skips the hash. The value
    // compared against is what this same connection sent before, so the comparison tells an
    // attacker nothing about a configured token; a new connection always takes the
    // constant-time check.
    const memo = connection as MemoSocket | undefined;
    if (memo !== undefined && memo[VERIFIED_AUTHORIZATION] === authorization) return BEARER;
    const token = bearerFromHeader(authorization);
    if (token === undefined) throw new GatewayError('GW_ERR_UNAUTHORIZED', 'malformed Authorization header: expected Bearer <token>');
    // A wrong bearer token is refused even when a link is also present: no fallback guessing.
    if (!options.bearer(token)) throw new GatewayError('GW_ERR_UNAUTHORIZED', 'invalid bearer token');
    if (memo !== undefined) memo[VERIFIED_AUTHORIZATION] = authorization;
    return BEARER;
  }
  if (sig !== undefined) {
    if (!options.links) throw new GatewayError('GW_ERR_UNAUTHORIZED', 'signed links are not enabled (no public key configured)');
    return options.links(sig, request);
  }
  throw new GatewayError('GW_ERR_UNAUTHORIZED', 'missing credentials: send Authorization: Bearer <token> or a signed link');
}
