/**
 * Errors with stable codes. This module is a leaf: it imports nothing of ours.
 * The HTTP status for each code is decided in one place, `http/error-response.ts`.
 */

/** Every error code the gateway can report. Clients see the message; logs see the cause. */
export type ErrorCode =
  | 'GW_ERR_BAD_REQUEST'
  | 'GW_ERR_INVALID_KEY'
  | 'GW_ERR_UNKNOWN_BUCKET'
  | 'GW_ERR_NOT_FOUND'
  | 'GW_ERR_UNAUTHORIZED'
  | 'GW_ERR_FORBIDDEN'
  | 'GW_ERR_METHOD_NOT_ALLOWED'
  | 'GW_ERR_CONFLICT'
  | 'GW_ERR_LENGTH_REQUIRED'
  | 'GW_ERR_PAYLOAD_TOO_LARGE'
  | 'GW_ERR_URI_TOO_LONG'
  | 'GW_ERR_RANGE_NOT_SATISFIABLE'
  | 'GW_ERR_PRECONDITION_FAILED'
  | 'GW_ERR_STORE'
  | 'GW_ERR_STORE_TIMEOUT'
  | 'GW_ERR_SHUTTING_DOWN'
  | 'GW_ERR_STORE_UNAVAILABLE'
  | 'GW_ERR_CONFIG'
  | 'GW_ERR_NOT_IMPLEMENTED'
  | 'GW_ERR_INTERNAL';

/** A failure with a stable code and a one-line, client-safe message. */
export class GatewayError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GatewayError';
    this.code = code;
  }
}

/** RFC 9110 §15.5.17: no requested range overlaps the object; the answer names its size. */
export class RangeNotSatisfiableError extends GatewayError {
  readonly size: number;

  constructor(size: number) {
    super('GW_ERR_RANGE_NOT_SATISFIABLE', `range not satisfiable for an object of ${size} bytes`);
    this.name = 'RangeNotSatisfiableError';
    this.size = size;
  }
}

/**
 * A key the store cannot hold for a reason of the client's making (it names a directory, runs
 * through a file, has a segment longer than the filesystem allows, names a reserved folder, or
 * leads out of the root through a link). Not a store failure: it maps to a 4xx and is not
 * counted as an upstream error.
 */
export class KeyRejectedError extends GatewayError {
  constructor(code: 'GW_ERR_INVALID_KEY' | 'GW_ERR_FORBIDDEN' | 'GW_ERR_CONFLICT' | 'GW_ERR_URI_TOO_LONG', message: string) {
    super(code, message);
    this.name = 'KeyRejectedError';
  }
}

/** Operations a store performs; used in errors, events and metrics labels. */
export type StoreOp = 'head' | 'get' | 'put' | 'delete';

/**
 * Any store failure other than "not found". It keeps the SDK's error as `cause` so the log can
 * say what happened, while the client only learns which store and operation failed.
 */
export class StoreError extends GatewayError {
  readonly storeId: string;
  readonly op: StoreOp;
  /** A short machine-friendly kind, used as a metrics label (`timeout`, `access_denied`, …). */
  readonly kind: string;

  constructor(storeId: string, op: StoreOp, cause: unknown, kind = classifyCause(cause)) {
    const timeout = kind === 'timeout';
    super(
      timeout ? 'GW_ERR_STORE_TIMEOUT' : 'GW_ERR_STORE',
      `store '${storeId}' failed to ${op}${timeout ? ' in time' : ''}`,
      { cause },
    );
    this.name = 'StoreError';
    this.storeId = storeId;
    this.op = op;
    this.kind = kind;
  }
}

/**
 * The kind of a store failure whose store did not name one, from what the driver's error carries
 * (its name, code, or HTTP status). The one place that reads driver errors: retries
 * (core/store-guard.ts) and stale_if_error (core/freshness.ts) decide on the kind alone.
 */
function classifyCause(cause: unknown): string {
  if (cause && typeof cause === 'object') {
    const c = cause as { name?: unknown; code?: unknown; statusCode?: unknown; $metadata?: { httpStatusCode?: unknown } };
    if (c.name === 'TimeoutError' || c.code === 'ETIMEDOUT' || c.name === 'StoreTimeoutError') return 'timeout';
    // undici's own deadlines (the lean read paths' pools).
    if (c.code === 'UND_ERR_CONNECT_TIMEOUT' || c.code === 'UND_ERR_HEADERS_TIMEOUT') return 'timeout';
    if (c.name === 'AbortError') return 'aborted';
    if (c.code === 'ECONNREFUSED' || c.code === 'ECONNRESET' || c.code === 'EPIPE' || c.code === 'UND_ERR_SOCKET' || c.code === 'ENOTFOUND') return 'network';
    if (c.name === 'AccessDenied' || c.code === 'EACCES' || c.code === 'EPERM') return 'access_denied';
    const status = typeof c.statusCode === 'number' ? c.statusCode : c.$metadata?.httpStatusCode;
    if (typeof status === 'number') return statusKind(status) ?? 'other';
  }
  return 'other';
}

/**
 * The kind of a store's HTTP error status, for every store and driver (the lean read paths pass
 * it to StoreError; the classifier above reads it off SDK errors); `undefined` for a status that
 * names no kind of its own.
 */
export function statusKind(status: number): string | undefined {
  if (status === 403) return 'access_denied';
  if (status === 412) return 'precondition_failed';
  if (status === 416) return 'range_not_satisfiable';
  if (status === 503 || status === 429) return 'throttled';
  if (status >= 500) return 'server_error';
  return undefined;
}

/**
 * A store left alone for now: its circuit breaker is open, or its queue of calls is full. The
 * answer is a 503 with `Retry-After`; the store was not asked.
 */
export class StoreUnavailableError extends GatewayError {
  readonly storeId: string;
  readonly retryAfterSec: number;

  constructor(storeId: string, message: string, retryAfterSec: number) {
    super('GW_ERR_STORE_UNAVAILABLE', message);
    this.name = 'StoreUnavailableError';
    this.storeId = storeId;
    this.retryAfterSec = retryAfterSec;
  }
}

/** Raised when a store stops sending bytes or headers within its deadline. */
export class StoreTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreTimeoutError';
  }
}

/** Narrow an unknown error to a GatewayError, wrapping anything else as internal. */
export function asGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  return new GatewayError('GW_ERR_INTERNAL', 'internal error', { cause: err });
}
