/**
 * The fast path: a plain GET or HEAD is answered on the raw Node request, before Hono, when it is
 * a memory hit, and a plain GET also when it is not. Building Hono's Request, Context and
 * middleware chain costs several times what writing a cached buffer does (measured: 4 KiB hits
 * at ~0.2x raw node:http through Hono, see BENCHMARKS.md), and about a fifth of a cold 4 KiB
 * miss's CPU. Plain requests are most of a cache's traffic.
 *
 * It decides nothing on its own. The request gate has already refused what every path refuses;
 * the credential check (`authenticate`), the path parsing, the link-override check, the header
 * builder (`response-headers.ts`: Cache-Control, link overrides, CORS, Age), the error answer
 * (`errorAnswer`) and the body writer (`writeBody`) are the route's own. What it leaves to the
 * route is what a plain request is not (`isPlainHit`): a Range or conditional header, a query
 * other than a lone `sig`, credentials or overrides that do not verify (the route explains why),
 * a HEAD the memory tier does not hold, or another method.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { authenticate, type AuthOptions, type AuthResult } from '../auth/middleware.js';
import type { ObjectService } from '../core/object-service.js';
import { requestIdFor, X_REQUEST_ID, type RequestRecorder } from './access-log.js';
import { errorAnswer, writeErrorAnswer, type ErrorLogger, type ServerErrorListener } from './error-response.js';
import { parseObjectPath, type ObjectPath } from './object-path.js';
import { ageHeader, type ResponseHeaderBuilder } from './response-headers.js';
import { logStreamErrors, writeBody } from './send.js';

export interface FastPathDeps {
  service: ObjectService;
  auth: AuthOptions;
  headers: ResponseHeaderBuilder;
  recorder: RequestRecorder;
  /** Where a read answered here logs its server-side failures, as the route does. */
  log: ErrorLogger;
  onServerError?: ServerErrorListener | undefined;
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

/** Returns a handler that answers plain requests (memory hits, and GETs that are not) and returns `false` for everything else. */
export function createFastPath(deps: FastPathDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { service, auth, recorder } = deps;
  const { logLines } = recorder;
  const onStreamError = logStreamErrors(deps.log);

  /** A plain GET the memory tier does not hold: read through the core, answered here. */
  async function serveRead(req: IncomingMessage, res: ServerResponse, path: ObjectPath, who: AuthResult, started: number): Promise<void> {
    const origin = req.headers.origin;
    const requestId = requestIdFor(req.headers[X_REQUEST_ID], logLines);
    const idHeader = requestId !== undefined ? { [X_REQUEST_ID]: requestId } : undefined;
    // Recorded once the answer is decided and the response is over, also when the client left
    // first (completed: false, with the status decided), as the route's access log does.
    let status = 0;
    let bytes = 0;
    let cache: 'hit' | 'miss' | 'none' = 'none';
    let decided = false;
    let closed = false;
    /** Whether the whole answer had gone to the kernel when the connection closed. */
    let completed = false;
    const record = () => {
      if (!decided || !closed) return;
      decided = false;
      recorder.record({
        method: 'GET',
        status,
        bytes,
        durationSec: (performance.now() - started) / 1000,
        cache,
        requestId: requestId ?? '',
        bucket: path.bucket,
        key: path.key,
        completed,
      });
    };
    res.once('close', () => {
      closed = true;
      completed = res.writableFinished;
      record();
    });
    try {
      const read = await service.read(path.bucket, path.key);
      // From here this function owns the body: it is handed to the response, or released.
      try {
        const headers = { ...deps.headers.build(read.meta, read.cache, who, path.bucket, origin), ...ageHeader(read.staleAgeSec), ...idHeader };
        status = 200;
        bytes = read.meta.size;
        cache = read.cache;
        writeBody(res, status, headers, read.body, onStreamError);
      } catch (err) {
        if (read.body.kind === 'stream') read.body.stream.destroy();
        else read.body.release?.();
        throw err;
      }
    } catch (err) {
      cache = 'none';
      bytes = 0;
      if (res.headersSent) {
        // Failed while writing: nothing more can be told to the client.
        res.destroy();
        decided = true;
        record();
        return;
      }
      const answer = errorAnswer(err, 'GET', deps.log, deps.onServerError);
      status = answer.status;
      try {
        // As the route counts an error answer: the bytes of its JSON line.
        bytes = writeErrorAnswer(res, 'GET', answer, { ...deps.headers.cors(path.bucket, origin), ...idHeader });
      } catch {
        res.destroy(); // nothing this function started may escape as an unhandled rejection
      }
    }
    decided = true;
    record();
  }

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
    if (!entry) {
      if (method !== 'GET') return false;
      // A link's overrides are checked before anything is fetched; a refusal is the route's to explain.
      try {
        deps.headers.checkOverrides(who);
      } catch {
        return false;
      }
      void serveRead(req, res, path, who, started);
      return true;
    }
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
