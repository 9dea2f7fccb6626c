/**
 * The gate: what every request meets on the raw Node request, before the hit fast path and Hono.
 *
 * - Refusals that must be the same on every path, decided once here: a raw `#` in the target, a
 *   target that is not a path, a raw backslash in the path, a missing Host, a repeated
 *   Authorization, a transfer coding other than chunked. Each gets the one-line JSON error (Node
 *   and the Hono adapter would answer some of them with a bare 400, and read others two ways).
 * - Order: RFC 9112 §9.3.2 allows pipelined requests to be processed in parallel only when they
 *   are all safe. A request after an unsafe one (a PUT) waits until that one is answered, and an
 *   unsafe one waits for everything before it, so a GET pipelined after a PUT sees the new object.
 * - `Expect: 100-continue`: Node would send 100 as the headers arrive, before anyone checked the
 *   credentials. The gate takes the request instead; the PUT route sends 100 (`sendContinue`)
 *   only once the request passed its checks, right before it reads the body.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { GatewayError } from '../errors.js';
import { requestIdFor, X_REQUEST_ID, type RequestRecorder } from './access-log.js';
import { STATUS_BY_CODE, writeErrorAnswer } from './error-response.js';

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const SIMPLE_HOST_RE = /^[a-z0-9._-]+(?::\d{1,5})?$/i;

const LAST_RESPONSE = Symbol('cachegate.lastResponse');
const BARRIER = Symbol('cachegate.barrier');
const EXPECTS_CONTINUE = Symbol('cachegate.expectsContinue');

type GateSocket = Socket & { [LAST_RESPONSE]?: ServerResponse; [BARRIER]?: Promise<void> };
type ContinueRequest = IncomingMessage & { [EXPECTS_CONTINUE]?: boolean };

/** Why a request is refused before any route sees it; `undefined` lets it through. */
export function requestProblem(req: IncomingMessage): GatewayError | undefined {
  const url = req.url ?? '';
  // One rule for the fast path and the route alike: a fragment never reaches a server.
  if (url.includes('#')) return new GatewayError('GW_ERR_BAD_REQUEST', "raw '#' in the request target: percent-encode it as %23");
  if (url.charCodeAt(0) !== 47 /* / */ && !/^https?:\/\//i.test(url)) {
    return new GatewayError('GW_ERR_BAD_REQUEST', 'request target must be a path (origin form)');
  }
  // A backslash before the query (no slice: this runs on every request, hits included).
  const backslash = url.indexOf('\\');
  if (backslash !== -1) {
    const q = url.indexOf('?');
    if (q === -1 || backslash < q) return new GatewayError('GW_ERR_INVALID_KEY', 'invalid object key: backslash');
  }
  const host = req.headers.host;
  if (host === undefined || host === '') {
    // RFC 9112 §3.2: a 1.1 request without Host is a 400.
    if (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) return new GatewayError('GW_ERR_BAD_REQUEST', 'missing Host header');
  } else if (!SIMPLE_HOST_RE.test(host) && !validHost(host)) {
    return new GatewayError('GW_ERR_BAD_REQUEST', 'invalid Host header');
  }
  // Node keeps the first of repeated Authorization headers and the Fetch API joins them: two
  // readers, two answers. Refuse the request instead.
  if (req.headers.authorization !== undefined && countHeader(req.rawHeaders, 'authorization') > 1) {
    return new GatewayError('GW_ERR_BAD_REQUEST', 'repeated Authorization header');
  }
  const te = req.headers['transfer-encoding'];
  // RFC 9112 §6.1: a coding the server does not understand is a 501; only chunked is decoded.
  if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
    return new GatewayError('GW_ERR_NOT_IMPLEMENTED', 'unsupported transfer coding: only chunked is accepted');
  }
  return undefined;
}

function validHost(host: string): boolean {
  try {
    return new URL(`http://${host}/`).host !== '';
  } catch {
    return false;
  }
}

function countHeader(raw: readonly string[], lowerName: string): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === lowerName.length && name.toLowerCase() === lowerName) n++;
  }
  return n;
}

/** Whether the response is over (answered, or its connection gone). */
function isDone(res: ServerResponse): boolean {
  return res.writableFinished || res.destroyed;
}

function whenClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    if (res.closed) resolve();
    else res.once('close', () => resolve());
  });
}

export interface RequestGateOptions {
  /** The fast path, then Hono. */
  handle: RequestHandler;
  recorder: RequestRecorder;
}

/** The `request` (and `checkContinue`) listener for the HTTP server. */
export function createRequestGate(options: RequestGateOptions): { onRequest: RequestHandler; onCheckContinue: RequestHandler } {
  const { handle, recorder } = options;

  const dispatch = (req: IncomingMessage, res: ServerResponse) => {
    const problem = requestProblem(req);
    if (problem) refuse(req, res, problem, recorder);
    else handle(req, res);
  };

  const onRequest: RequestHandler = (req, res) => {
    const socket = req.socket as GateSocket;
    let wait = socket[BARRIER];
    const unsafe = !SAFE_METHODS.has(req.method ?? '');
    if (unsafe) {
      // Everything before it on this connection is answered first (responses finish in order).
      const prev = socket[LAST_RESPONSE];
      if (prev && !isDone(prev)) wait = wait ? wait.then(() => whenClosed(prev)) : whenClosed(prev);
    }
    socket[LAST_RESPONSE] = res;
    if (unsafe) {
      const barrier = (wait ?? Promise.resolve()).then(() => whenClosed(res));
      socket[BARRIER] = barrier;
      void barrier.then(() => {
        if (socket[BARRIER] === barrier) socket[BARRIER] = undefined;
      });
    }
    if (wait) void wait.then(() => dispatch(req, res));
    else dispatch(req, res);
  };

  const onCheckContinue: RequestHandler = (req, res) => {
    (req as ContinueRequest)[EXPECTS_CONTINUE] = true;
    onRequest(req, res);
  };

  return { onRequest, onCheckContinue };
}

/**
 * The response still being worked on for this connection, if any. A parser error on the bytes
 * after a request (a PUT without a length whose client sends a body anyway) must not overtake
 * that request's answer: the caller lets it finish, then closes the connection.
 */
export function pendingResponse(socket: unknown): ServerResponse | undefined {
  const last = (socket as GateSocket)[LAST_RESPONSE];
  return last && !isDone(last) ? last : undefined;
}

/**
 * Send `100 Continue` to a client that waits for it (`Expect: 100-continue`), once the request
 * passed its checks and its body is about to be read. A no-op for every other request.
 */
export function sendContinue(req: IncomingMessage | undefined, res: ServerResponse | undefined): void {
  const r = req as ContinueRequest | undefined;
  if (!r?.[EXPECTS_CONTINUE] || !res || res.headersSent) return;
  r[EXPECTS_CONTINUE] = false;
  res.writeContinue();
}

/** Answer a refused request with the one-line JSON error, close the connection, and record it. */
function refuse(req: IncomingMessage, res: ServerResponse, err: GatewayError, recorder: RequestRecorder): void {
  const started = performance.now();
  const status = STATUS_BY_CODE[err.code];
  const requestId = requestIdFor(req.headers[X_REQUEST_ID], recorder.logLines);
  // The request's framing or body cannot be trusted: do not read on from this connection.
  const answer = { status, headers: { 'cache-control': 'no-store', connection: 'close' }, payload: { error: err.message, code: err.code } };
  writeErrorAnswer(res, req.method ?? '', answer, requestId ? { [X_REQUEST_ID]: requestId } : undefined);
  recorder.record({
    method: req.method ?? '',
    status,
    bytes: 0,
    durationSec: (performance.now() - started) / 1000,
    cache: 'none',
    requestId: requestId ?? '',
    bucket: undefined,
    key: undefined,
    completed: !res.destroyed,
  });
}
