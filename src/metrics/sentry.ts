/**
 * Optional error reporting to Sentry, as cachegate does with `sentry.dsn` (`dsn: null` or no
 * section means off). A small envelope client instead of the Sentry SDK: it sends server errors
 * (5xx) and crashes, rate-limited, and never carries request URLs, query strings or headers, so
 * no `sig` or token can leak. Sending never blocks or fails a request.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';

/** At most this many events per minute; the rest are dropped (and counted). */
export const SENTRY_EVENTS_PER_MINUTE = 30;
const SEND_TIMEOUT_MS = 5_000;

export interface SentryOptions {
  dsn: string;
  environment?: string | undefined;
  release?: string | undefined;
}

export interface ErrorContext {
  code?: string;
  method?: string;
  bucket?: string;
  status?: number;
}

/** Reports errors; a no-op when Sentry is off. */
export interface ErrorReporter {
  capture(err: unknown, context?: ErrorContext): void;
  /** Wait for events in flight (shutdown). */
  flush(): Promise<void>;
  readonly dropped: number;
}

export const NO_REPORTER: ErrorReporter = { capture: () => {}, flush: async () => {}, dropped: 0 };

interface ParsedDsn {
  envelopeUrl: string;
  publicKey: string;
  dsn: string;
}

/** Parse `https://<public key>@<host>[:port]/[path/]<project id>`; throws on anything else. */
export function parseDsn(dsn: string): ParsedDsn {
  const url = new URL(dsn);
  const projectId = url.pathname.split('/').filter(Boolean).pop();
  if (!url.username || !projectId || !/^\d+$/.test(projectId) || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw new Error('sentry.dsn must look like https://<key>@<host>/<project id>');
  }
  const prefix = url.pathname.slice(0, url.pathname.lastIndexOf(projectId));
  return { envelopeUrl: `${url.protocol}//${url.host}${prefix}api/${projectId}/envelope/`, publicKey: url.username, dsn };
}

/** Build the reporter; `undefined` options (or a null dsn) give a no-op. */
export function createErrorReporter(options: SentryOptions | undefined, onSendError?: (err: unknown) => void): ErrorReporter {
  if (!options) return NO_REPORTER;
  const { envelopeUrl, publicKey, dsn } = parseDsn(options.dsn);
  const inFlight = new Set<Promise<void>>();
  let windowStart = Date.now();
  let sentInWindow = 0;
  let dropped = 0;
  const server = hostname();

  const send = (err: unknown, context: ErrorContext) => {
    const e = err instanceof Error ? err : new Error(String(err));
    const cause = e.cause instanceof Error ? e.cause : undefined;
    const eventId = randomUUID().replace(/-/g, '');
    const event = {
      event_id: eventId,
      timestamp: Date.now() / 1000,
      platform: 'node',
      level: 'error',
      logger: 'cachegate',
      server_name: server,
      ...(options.environment ? { environment: options.environment } : {}),
      ...(options.release ? { release: options.release } : {}),
      tags: { ...(context.code ? { code: context.code } : {}), ...(context.bucket ? { bucket: context.bucket } : {}), ...(context.method ? { method: context.method } : {}), ...(context.status ? { status: String(context.status) } : {}) },
      exception: {
        values: [
          ...(cause ? [{ type: cause.name, value: cause.message }] : []),
          { type: e.name, value: e.message, ...(e.stack ? { stacktrace: { frames: framesOf(e.stack) } } : {}) },
        ],
      },
    };
    const body = `${JSON.stringify({ event_id: eventId, dsn, sent_at: new Date().toISOString() })}\n${JSON.stringify({ type: 'event' })}\n${JSON.stringify(event)}\n`;
    const p = fetch(envelopeUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-sentry-envelope',
        'x-sentry-auth': `Sentry sentry_version=7, sentry_key=${publicKey}, sentry_client=cachegate/1`,
      },
      body,
      signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
    })
      .then((res) => void res.body?.cancel())
      .catch((sendErr: unknown) => onSendError?.(sendErr))
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };

  return {
    capture(err, context = {}) {
      const now = Date.now();
      if (now - windowStart >= 60_000) {
        windowStart = now;
        sentInWindow = 0;
      }
      if (sentInWindow >= SENTRY_EVENTS_PER_MINUTE) {
        dropped++;
        return;
      }
      sentInWindow++;
      send(err, context);
    },
    async flush() {
      await Promise.allSettled([...inFlight]);
    },
    get dropped() {
      return dropped;
    },
  };
}

/** Sentry frames, oldest call first, from a V8 stack. */
function framesOf(stack: string): { function: string; filename: string; lineno?: number; colno?: number }[] {
  const frames = [];
  for (const line of stack.split('\n').slice(1)) {
    const m = /^\s*at (?:(.*?) \()?(.*?):(\d+):(\d+)\)?$/.exec(line);
    if (m) frames.push({ function: m[1] ?? '?', filename: m[2]!, lineno: Number(m[3]), colno: Number(m[4]) });
  }
  return frames.reverse();
}
