/**
 * Turning errors into responses, in one place: the status for each code, a one-line JSON body,
 * and a log line that carries the cause. No stack trace ever reaches a client.
 */
import type { ServerResponse } from 'node:http';
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { asGatewayError, RangeNotSatisfiableError, StoreUnavailableError, type ErrorCode } from '../errors.js';
import { withExtras } from './send.js';

export const STATUS_BY_CODE: Readonly<Record<ErrorCode, ContentfulStatusCode>> = {
  GW_ERR_BAD_REQUEST: 400,
  GW_ERR_INVALID_KEY: 400,
  GW_ERR_UNAUTHORIZED: 401,
  GW_ERR_FORBIDDEN: 403,
  GW_ERR_UNKNOWN_BUCKET: 404,
  GW_ERR_NOT_FOUND: 404,
  GW_ERR_METHOD_NOT_ALLOWED: 405,
  GW_ERR_CONFLICT: 409,
  GW_ERR_LENGTH_REQUIRED: 411,
  GW_ERR_PRECONDITION_FAILED: 412,
  GW_ERR_PAYLOAD_TOO_LARGE: 413,
  GW_ERR_URI_TOO_LONG: 414,
  GW_ERR_RANGE_NOT_SATISFIABLE: 416,
  GW_ERR_INTERNAL: 500,
  GW_ERR_NOT_IMPLEMENTED: 501,
  GW_ERR_STORE: 502,
  GW_ERR_SHUTTING_DOWN: 503,
  GW_ERR_STORE_UNAVAILABLE: 503,
  GW_ERR_STORE_TIMEOUT: 504,
  GW_ERR_CONFIG: 500,
};

/** Minimal logger shape the HTTP layer needs (pino fits). */
export interface ErrorLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Called for server-side failures (5xx), e.g. to report them to Sentry. */
export type ServerErrorListener = (err: unknown, context: { code: string; method: string; status: number }) => void;

/** What an error answer is, before it is written: the same on the route and the fast path. */
export interface ErrorAnswer {
  status: ContentfulStatusCode;
  headers: Record<string, string>;
  /** The one-line JSON body (none is sent for HEAD). */
  payload: { error: string; code: ErrorCode };
}

/** The error answer for `err`; logs server-side failures with their cause. */
export function errorAnswer(err: unknown, method: string, log: ErrorLogger, onServerError?: ServerErrorListener): ErrorAnswer {
  const e = asGatewayError(err);
  const status = STATUS_BY_CODE[e.code];
  // 501 answers a request the gateway does not implement (a transfer coding): the client's doing.
  if (status >= 500 && status !== 501) {
    onServerError?.(e, { code: e.code, method, status });
    const cause = e.cause instanceof Error ? { name: e.cause.name, message: e.cause.message } : e.cause;
    (status === 500 ? log.error : log.warn).call(log, { code: e.code, cause, stack: status === 500 ? (e.cause as Error)?.stack : undefined }, e.message);
  }
  // HEAD responses carry no body, but keep the status and headers.
  const headers: Record<string, string> = { 'cache-control': 'no-store' };
  // A refused upload's body may be unread (and large): close rather than drain it.
  if (method === 'PUT') headers.connection = 'close';
  // RFC 9110 §14.4: a 416 names the current length.
  if (e instanceof RangeNotSatisfiableError) headers['content-range'] = `bytes */${e.size}`;
  // RFC 9110 §10.2.3: when to ask again, for a store that is being left alone.
  if (e instanceof StoreUnavailableError) headers['retry-after'] = String(e.retryAfterSec);
  return { status, headers, payload: { error: e.message, code: e.code } };
}

/** The JSON error response for `err` on the route (Hono); logs server-side failures with their cause. */
export function errorResponse(c: Context, err: unknown, log: ErrorLogger, onServerError?: ServerErrorListener): Response {
  const { status, headers, payload } = errorAnswer(err, c.req.method, log, onServerError);
  withExtras(c, headers);
  if (c.req.method === 'HEAD') return c.body(null, status, headers);
  return c.json(payload, status, headers);
}

/**
 * Write an error answer on the raw Node response (the request gate, the fast path): the same
 * one-line JSON the route sends, its length, and no body for HEAD. Returns the body's bytes.
 */
export function writeErrorAnswer(res: ServerResponse, method: string, answer: ErrorAnswer, extra?: Record<string, string>): number {
  const body = JSON.stringify(answer.payload);
  const bytes = Buffer.byteLength(body);
  res.writeHead(answer.status, { ...answer.headers, ...extra, 'content-type': 'application/json', 'content-length': String(bytes) });
  res.end(method === 'HEAD' ? undefined : body);
  return bytes;
}
