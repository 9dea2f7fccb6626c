/**
 * The hit fast path: a plain GET or HEAD of an object held in memory is answered on the raw Node
 * request, before Hono. Building Hono's Request, Context and middleware chain costs several
 * times what writing a cached buffer does (measured: 4 KiB hits at ~0.2x raw node:http through
 * Hono, see BENCHMARKS.md), and plain hits are most of a cache's traffic.
 *
 * It decides nothing on its own. The request gate has already refused what every path refuses;
 * the credential check (`authenticate`), the path parsing and the header builder
 * (`response-headers.ts`: Cache-Control, link overrides, CORS) are the route's own. What it
 * leaves to the route is only what a plain hit is not (`isPlainHit`): a Range or conditional
 * header, a query other than a lone `sig`, credentials that do not verify (the route explains
 * why), or a key not in memory.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { authenticate, type AuthOptions, type AuthResult } from '../auth/middleware.js';
import type { ObjectService } from '../core/object-service.js';
import { requestIdFor, X_REQUEST_ID, type RequestRecorder } from './access-log.js';
import { parseObjectPath, type ObjectPath } from './object-path.js';
import type { ResponseHeaderBuilder } from './response-headers.js';

export interface FastPathDeps {
  service: ObjectService;
  auth: AuthOptions;
  headers: ResponseHeaderBuilder;
  recorder: RequestRecorder;
}

/** Headers whose presence makes a request more than a plain hit. */
const FULL_ROUTE_HEADERS = ['range', 'if-range', 'if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since'] as const;
const SIG_RE = /^[\w.-]+$/;

/**
 * A plain GET or HEAD: no Range or conditional header, and no query but a lone `sig` (base64url
 * and '.', nothing to decode). Returns the path to parse and the sig, or `undefined`.
 */
export function isPlainHit(method: string | undefined, url: string | undefined, h: IncomingHttpHeaders): { path: string; sig: string | undefined } | undefined {
  if (method !== 'GET' && method !== 'HEAD') return undefined;
  for (const name of FULL_ROUTE_HEADERS) if (h[name] !== undefined) return undefined;
  if (url === undefined || url.charCodeAt(0) !== 47 /* / */) return undefined;
  const q = url.indexOf('?');
  if (q === -1) return { path: url, sig: undefined };
  const query = url.slice(q + 1);
  if (!query.startsWith('sig=') || !SIG_RE.test(query.slice(4))) return undefined;
  return { path: url.slice(0, q), sig: query.slice(4) };
}

/** Returns a handler that answers plain memory hits and returns `false` for everything else. */
export function createFastPath(deps: FastPathDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { service, auth, recorder } = deps;
  const { logLines } = recorder;

  return function fastPath(req, res) {
    const started = performance.now();
    const h = req.headers;
    const plain = isPlainHit(req.method, req.url, h);
    if (!plain) return false;
    const method = req.method!;
    let path: ObjectPath;
    let who: AuthResult;
    let headers: Record<string, string>;
    try {
      path = parseObjectPath(plain.path);
      if (!service.hasStore(path.bucket)) return false;
      who = authenticate(auth, h.authorization, plain.sig, { method, bucket: path.bucket, key: path.key }, req.socket);
    } catch {
      return false; // the route gives the reason, and counts the failure
    }
    const entry = service.memoryHit(path.bucket, path.key);
    if (!entry) return false;
    try {
      headers = deps.headers.build(entry.meta, 'hit', who, path.bucket, h.origin) as Record<string, string>;
    } catch {
      return false;
    }
    // A request id only when access lines are written (or the client sent one to echo).
    const requestId = requestIdFor(h[X_REQUEST_ID], logLines);
    if (requestId !== undefined) headers = { ...headers, [X_REQUEST_ID]: requestId };
    res.writeHead(200, headers);
    if (method === 'HEAD') res.end();
    else res.end(entry.body);

    // One write of a buffer from memory: recorded now rather than on 'close' (a listener and a
    // closure per hit). A client that goes away mid-write still counts as served.
    recorder.record({
      method,
      status: 200,
      bytes: method === 'HEAD' ? 0 : entry.body.length,
      durationSec: (performance.now() - started) / 1000,
      cache: 'hit',
      requestId: requestId ?? '',
      bucket: path.bucket,
      key: path.key,
      completed: !res.destroyed,
    });
    return true;
  };
}
