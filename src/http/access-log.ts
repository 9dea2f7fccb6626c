/**
 * One access line per request, and the per-request metrics: method, bucket, key, status, bytes,
 * duration, cache result and request id. Recorded when the response is done (streamed bodies
 * included). The query string (which may hold `sig`) and the Authorization header are never
 * logged.
 */
import { randomUUID } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import type { Logger } from '../metrics/log.js';
import type { ObjectPath } from './object-path.js';
import { setResponseHeader } from './send.js';

export const X_REQUEST_ID = 'x-request-id';
const REQUEST_ID_RE = /^[\w.:-]{1,128}$/;

/** What one request did. */
export interface RequestRecord {
  method: string;
  status: number;
  bytes: number;
  durationSec: number;
  cache: 'hit' | 'miss' | 'none';
  requestId: string;
  bucket: string | undefined;
  key: string | undefined;
  /** False when the connection ended before the response did. */
  completed: boolean;
}

export interface AccessLogOptions {
  log: Logger;
  /** Write access lines (at info level). */
  enabled: boolean;
  onRequest?: (r: RequestRecord) => void;
}

/** What a handler tells the access log about the body it sent (streams bypass Hono's Response). */
export interface ResponseNote {
  cache: 'hit' | 'miss';
  bytes: number;
}

type Env = { Bindings: HttpBindings; Variables: { objectPath: ObjectPath; requestId: string; responseNote: ResponseNote } };

/**
 * The request id for a response: the client's `x-request-id` when it is sane, else a new one when
 * access lines are written, else none. Shared by the route and the hit fast path.
 */
export function requestIdFor(incoming: unknown, logLines: boolean): string | undefined {
  if (typeof incoming === 'string' && REQUEST_ID_RE.test(incoming)) return incoming;
  return logLines ? randomUUID() : undefined;
}

/** The one access line format, shared by the route and the hit fast path. */
export function writeAccessLine(log: Logger, r: RequestRecord): void {
  log.info(
    { req_id: r.requestId, method: r.method, bucket: r.bucket, key: r.key, status: r.status, bytes: r.bytes, duration_ms: Math.round(r.durationSec * 1e4) / 10, cache: r.cache, completed: r.completed },
    'request',
  );
}

/** Where every path (gate, fast path, route) records a request: counted, and logged when on. */
export interface RequestRecorder {
  /** Whether access lines are written (request ids are made only then). */
  readonly logLines: boolean;
  record(r: RequestRecord): void;
}

export function createRequestRecorder(options: AccessLogOptions): RequestRecorder {
  const { log, onRequest } = options;
  const logLines = options.enabled && log.isLevelEnabled('info');
  return {
    logLines,
    record(r) {
      onRequest?.(r);
      if (logLines) writeAccessLine(log, r);
    },
  };
}

/**
 * The middleware; runs first, so every request is counted (401s included), once, also when the
 * client leaves before the answer (`completed: false`, with the status the handler decided).
 */
export function createAccessLog(recorder: RequestRecorder): MiddlewareHandler<Env> {
  const { logLines } = recorder;
  return async function accessLog(c, next) {
    const started = performance.now();
    // A request id when access lines are written, or to echo the client's; as on the fast path.
    const requestId = requestIdFor(c.env?.incoming?.headers[X_REQUEST_ID] ?? c.req.header(X_REQUEST_ID), logLines) ?? '';
    c.set('requestId', requestId);
    if (requestId) setResponseHeader(c, X_REQUEST_ID, requestId);
    const out = c.env?.outgoing;
    let recorded = false;
    const record = (status: number, completed: boolean) => {
      if (recorded) return;
      recorded = true;
      const path = c.get('objectPath') as ObjectPath | undefined;
      const note = c.get('responseNote') as ResponseNote | undefined;
      recorder.record({
        method: c.req.method,
        status,
        // Object handlers note what they sent; other responses (errors, admin) are Hono's.
        bytes: note ? note.bytes : Number(c.res.headers.get('content-length') ?? 0) || 0,
        durationSec: (performance.now() - started) / 1000,
        cache: note?.cache ?? 'none',
        requestId,
        bucket: path?.bucket,
        key: path?.key,
        completed,
      });
    };
    // Listen from the start: a client may close the connection while the handler still works
    // (a slow miss, a PUT being written), and that request must be logged and counted too.
    let handled = false;
    out?.once('close', () => {
      if (handled) record(out.headersSent ? out.statusCode : c.res.status, out.writableFinished);
    });
    try {
      await next();
    } finally {
      handled = true;
    }
    if (!out) record(c.res.status, true);
    // The client already left: the answer decided will never be written.
    else if (out.closed || out.destroyed) record(out.headersSent ? out.statusCode : c.res.status, false);
    // Otherwise the adapter (or a piped stream) writes the response after this returns: the
    // 'close' listener records it.
  };
}
