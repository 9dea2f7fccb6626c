/**
 * The hit fast path: a plain GET or HEAD of an object held in memory is answered on the raw Node
 * request, before Hono. Building Hono's Request, Context and middleware chain costs several
 * times what writing a cached buffer does (measured: 4 KiB hits at ~0.2x raw node:http through
 * Hono, see BENCHMARKS.md), and plain hits are most of a cache's traffic.
 *
 * It uses the same path parsing, credentials checks, headers and Cache-Control as the Hono
 * route, and it never answers anything else: a request with Range or conditional headers, a
 * CORS origin, another query parameter, credentials that do not verify, link overrides, or a
 * cache miss returns `false` and goes through Hono unchanged, so every error and every other
 * feature has one implementation.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearerFromHeader } from '../auth/bearer.js';
import type { AuthOptions, AuthResult } from '../auth/middleware.js';
import type { CachedMeta } from '../cache/types.js';
import type { ObjectService } from '../core/object-service.js';
import type { LinkClaims } from '../sign/index.js';
import type { Logger } from '../metrics/log.js';
import { requestIdFor, writeAccessLine, X_REQUEST_ID, type RequestRecord } from './access-log.js';
import { cacheControlFor } from './cache-control.js';
import { objectHeaders } from './object-headers.js';
import { parseObjectPath, type ObjectPath } from './object-path.js';
import type { StoreHttpOptions } from './routes/objects.js';

export interface FastPathDeps {
  service: ObjectService;
  auth: AuthOptions;
  storeOptions: ReadonlyMap<string, StoreHttpOptions>;
  log: Logger;
  accessLog: boolean;
  onRequest?: ((r: RequestRecord) => void) | undefined;
}

/** Headers whose presence sends a request through the full route. */
const FULL_ROUTE_HEADERS = ['range', 'if-range', 'if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since'] as const;

const bearerHeaders = new WeakMap<CachedMeta, Record<string, string>>();

function buildBearerHeaders(meta: CachedMeta, configured: string | undefined): Record<string, string> {
  const headers = objectHeaders(meta, 'hit');
  headers['cache-control'] = cacheControlFor({ auth: 'bearer', nowSec: 0, configured });
  bearerHeaders.set(meta, headers);
  return headers;
}

// A link's max-age counts down to its expiry, so its headers hold for one second; a popular link
// reuses them within that second (claims objects live in the verified-token cache).
const linkHeaderMemo = new WeakMap<LinkClaims, { sec: number; meta: CachedMeta; headers: Record<string, string> }>();

function linkHeaders(meta: CachedMeta, claims: LinkClaims, configured: string | undefined): Record<string, string> {
  const sec = Math.floor(Date.now() / 1000);
  const memo = linkHeaderMemo.get(claims);
  if (memo && memo.sec === sec && memo.meta === meta) return memo.headers;
  const headers = objectHeaders(meta, 'hit');
  headers['cache-control'] = cacheControlFor({ auth: 'link', linkExpiresAtSec: claims.exp, nowSec: sec, configured });
  linkHeaderMemo.set(claims, { sec, meta, headers });
  return headers;
}

/** Returns a handler that answers plain memory hits and returns `false` for everything else. */
export function createFastPath(deps: FastPathDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { service, auth, storeOptions, log, onRequest } = deps;
  const logLines = deps.accessLog && log.isLevelEnabled('info');

  return function fastPath(req, res) {
    const started = performance.now();
    const method = req.method;
    if (method !== 'GET' && method !== 'HEAD') return false;
    const h = req.headers;
    for (const name of FULL_ROUTE_HEADERS) if (h[name] !== undefined) return false;

    const url = req.url;
    if (url === undefined || url.charCodeAt(0) !== 47 /* / */) return false;
    const q = url.indexOf('?');
    let sig: string | undefined;
    if (q !== -1) {
      // Only a lone `sig` parameter (base64url and '.', nothing to decode) stays on this path.
      const query = url.slice(q + 1);
      if (!query.startsWith('sig=') || !/^[\w.-]+$/.test(query.slice(4))) return false;
      sig = query.slice(4);
    }
    let path: ObjectPath;
    try {
      path = parseObjectPath(q === -1 ? url : url.slice(0, q));
    } catch {
      return false;
    }
    const opts = storeOptions.get(path.bucket);
    if (!opts || (opts.cors && h.origin !== undefined)) return false;

    const who = authenticate(auth, h.authorization, sig, method, path, req.socket as MemoSocket);
    if (!who || (who.kind === 'link' && (who.claims.rcd !== undefined || who.claims.rct !== undefined))) return false;

    const entry = service.memoryHit(path.bucket, path.key);
    if (!entry) return false;

    // Bearer hits share one complete header object per entry (no allocation per response);
    // a link's max-age depends on its expiry, so its headers are a copy.
    let headers: Record<string, string>;
    if (who.kind === 'bearer') {
      headers = bearerHeaders.get(entry.meta) ?? buildBearerHeaders(entry.meta, opts.cacheControl);
    } else {
      headers = linkHeaders(entry.meta, who.claims, opts.cacheControl);
    }
    // A request id only when access lines are written (or the client sent one to echo).
    const requestId = requestIdFor(h[X_REQUEST_ID], logLines);
    if (requestId !== undefined) headers = { ...headers, [X_REQUEST_ID]: requestId };
    res.writeHead(200, headers);
    if (method === 'HEAD') res.end();
    else res.end(entry.body);

    // One write of a buffer from memory: recorded now rather than on 'close' (a listener and a
    // closure per hit). A client that goes away mid-write still counts as served.
    if (onRequest || logLines) {
      const r: RequestRecord = {
        method,
        status: 200,
        bytes: method === 'HEAD' ? 0 : entry.body.length,
        durationSec: (performance.now() - started) / 1000,
        cache: 'hit',
        requestId: requestId ?? '',
        bucket: path.bucket,
        key: path.key,
        completed: !res.destroyed,
      };
      onRequest?.(r);
      if (logLines) writeAccessLine(log, r);
    }
    return true;
  };
}

/** A socket that remembers the Authorization header it last proved valid. */
type MemoSocket = { [VERIFIED_AUTHORIZATION]?: string };
const VERIFIED_AUTHORIZATION = Symbol('cachegate.verifiedAuthorization');
const BEARER: AuthResult = { kind: 'bearer' };

/** Who the request is, if its credentials verify; `undefined` lets the full route explain why not. */
function authenticate(
  auth: AuthOptions,
  authorization: string | undefined,
  sig: string | undefined,
  method: string,
  path: ObjectPath,
  socket: MemoSocket,
): AuthResult | undefined {
  if (authorization !== undefined) {
    // A keep-alive connection that already proved this exact header skips the hash. The value
    // compared against is what this same connection sent before, so the comparison tells an
    // attacker nothing about a configured token; a new connection always takes the
    // constant-time check.
    if (socket[VERIFIED_AUTHORIZATION] === authorization) return BEARER;
    const token = bearerFromHeader(authorization);
    if (token === undefined || !auth.bearer(token)) return undefined;
    socket[VERIFIED_AUTHORIZATION] = authorization;
    return BEARER;
  }
  if (sig === undefined || !auth.links) return undefined;
  try {
    return auth.links(sig, { method, bucket: path.bucket, key: path.key });
  } catch {
    return undefined;
  }
}
