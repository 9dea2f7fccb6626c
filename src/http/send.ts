/**
 * Writing bodies on the hot path. Buffers go through Hono's Response, which the Node adapter
 * writes straight to the socket. Streams are piped into the raw Node response: Web streams in
 * Node are several times slower than Node streams.
 */
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ObjectBody } from '../core/object-service.js';
import type { Context } from 'hono';
import type { StatusCode } from 'hono/utils/http-status';
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';

export type Headers = Record<string, string>;

/** Hono env on the Node adapter: `c.env` holds the raw request and response. */
export type NodeEnv = { Bindings: HttpBindings };

type ExtrasEnv = { Variables: { extraHeaders?: Record<string, string> } };

/**
 * Set a response header from middleware (request id, CORS). Kept in a plain per-request object
 * that every sender merges, rather than with c.header(): Hono's Headers would push every
 * response off the Node adapter's plain-object fast path (and break RESPONSE_ALREADY_SENT).
 */
export function setResponseHeader(c: Context, name: string, value: string): void {
  const cx = c as unknown as Context<ExtrasEnv>;
  const h = cx.get('extraHeaders');
  if (h) h[name] = value;
  else cx.set('extraHeaders', { [name]: value });
}

/** `headers` plus whatever middleware added for this request. */
export function withExtras(c: Context, headers: Headers): Headers {
  const extras = (c as unknown as Context<ExtrasEnv>).get('extraHeaders');
  return extras ? Object.assign(headers, extras) : headers;
}

/** Report a stream that ended badly after the headers went out (client abort, store failure). */
export type StreamErrorListener = (err: Error) => void;

/** The listener both GET paths use: a client that left is not worth a line; a store that failed is. */
export function logStreamErrors(log: { warn(obj: object, msg: string): void }): StreamErrorListener {
  return (err) => {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') log.warn({ err: err.message }, 'stream ended early');
  };
}

/** Send a whole buffer (or no body for HEAD). */
export function sendBuffer(c: Context, status: StatusCode, headers: Headers, body: Buffer | null): Response {
  // A Buffer is a Uint8Array; the adapter writes it to the socket without copying.
  if (c.req.method === 'HEAD' || body === null) return sendHead(c, status, headers);
  return c.body(body as Uint8Array<ArrayBuffer>, status as never, withExtras(c, headers));
}

/**
 * Send a lent buffer (a disk hit in a reused buffer), then give it back with `release`: when the
 * response has finished (its last byte went to the kernel) or its connection closed (no write of
 * it is pending any more), never sooner. HEAD, and in-process requests with no Node response,
 * release at once (the latter send a copy).
 */
export function sendLent<E extends NodeEnv>(c: Context<E>, status: StatusCode, headers: Headers, body: Buffer, release: () => void): Response {
  const out = c.env?.outgoing;
  if (c.req.method === 'HEAD' || !out) {
    const copy = c.req.method === 'HEAD' ? null : Buffer.from(body);
    release();
    return sendBuffer(c, status, headers, copy);
  }
  writeBody(out, status, withExtras(c, headers), { kind: 'buffer', buffer: body, release });
  return RESPONSE_ALREADY_SENT;
}

/**
 * Write a GET's answer to the raw Node response, for the route and the fast path alike. A buffer
 * goes in one write; a lent one is given back once the response has finished (its last byte went
 * to the kernel) or its connection closed, never sooner. A stream is piped, and consumed or
 * destroyed on every path: a client gone destroys it, which releases the store's socket.
 */
export function writeBody(out: ServerResponse, status: number, headers: Headers, body: ObjectBody, onError?: StreamErrorListener): void {
  if (body.kind === 'stream') {
    out.writeHead(status, headers);
    pipeline(body.stream, out).catch((err: Error) => onError?.(err));
    return;
  }
  const { release } = body;
  if (release) {
    // A connection already gone fires neither event again.
    if (out.destroyed) {
      release();
      return;
    }
    out.once('finish', release);
    out.once('close', release);
  }
  out.writeHead(status, headers);
  out.end(body.buffer);
}

/**
 * Send headers only (HEAD). Hono answers HEAD by re-wrapping the GET response, so this goes
 * through the adapter rather than the raw response; the adapter keeps our Content-Length.
 */
export function sendHead(c: Context, status: StatusCode, headers: Headers): Response {
  return c.body(null, status as never, withExtras(c, headers));
}

/**
 * Pipe a Node stream to the client. The stream is consumed or destroyed on every path: when the
 * client goes away, pipeline destroys it, which releases the store's socket.
 */
export function sendStream<E extends NodeEnv>(
  c: Context<E>,
  status: StatusCode,
  headers: Headers,
  stream: Readable,
  onError?: StreamErrorListener,
): Response {
  const out = c.env?.outgoing;
  if (c.req.method === 'HEAD') {
    stream.destroy();
    return sendHead(c, status, headers);
  }
  if (!out) {
    // In-process app.request() (tests): no Node response to pipe into.
    return c.body(Readable.toWeb(stream) as unknown as ReadableStream, status as never, withExtras(c, headers));
  }
  // (Reading c.res here would make Hono re-wrap RESPONSE_ALREADY_SENT and write the head twice.)
  writeBody(out, status, withExtras(c, headers), { kind: 'stream', stream }, onError);
  return RESPONSE_ALREADY_SENT;
}
