/**
 * Optional error reporting to Sentry, as cachegate does with `sentry.dsn` (`dsn: null` or no
 * section means off, and then nothing is loaded or sent). Built on Sentry's own SDK, `@sentry/core`:
 * its client builds the events (exception chains, stack frames, dedupe) and its transport
 * handles envelopes, rate-limit answers and a bounded send buffer.
 *
 * Why `@sentry/core` and not `@sentry/node`: measured on this machine (Node 20, 5 runs each, fresh
 * process, import + init), `@sentry/node` 11 took ~2.3 s and +74 MiB RSS (it sets up
 * OpenTelemetry and auto-instrumentation we do not use); `@sentry/core` 11 with a fetch transport
 * ~0.6 s and +18 MiB. `@sentry/node`'s own Node transport is not exported apart from the whole
 * SDK, so the transport here is `createTransport` over `fetch`. The SDK is imported only when a DSN
 * is set.
 *
 * Privacy: no integration that reads requests is installed, breadcrumbs are off, and every event
 * passes `scrubEvent`, which keeps only the exception, tags and release fields and masks `sig=`
 * values and bearer tokens in messages: no `sig` or token can reach an event.
 */
import { hostname } from 'node:os';
import type * as SentryCore from '@sentry/core';
import { redactUrl } from './log.js';

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

/**
 * Check `https://<public key>@<host>[:port]/[path/]<project id>` at startup, synchronously (the
 * SDK itself is loaded later, and would only log a bad DSN and send nothing).
 */
export function checkDsn(dsn: string): void {
  let url: URL;
  try {
    url = new URL(dsn);
  } catch {
    throw new Error('sentry.dsn must look like https://<key>@<host>/<project id>');
  }
  const projectId = url.pathname.split('/').filter(Boolean).pop();
  if (!url.username || !projectId || !/^\d+$/.test(projectId) || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw new Error('sentry.dsn must look like https://<key>@<host>/<project id>');
  }
}

/** Build the reporter; `undefined` options give a no-op. Throws on a malformed DSN. */
export function createErrorReporter(options: SentryOptions | undefined, onSendError?: (err: unknown) => void): ErrorReporter {
  if (!options) return NO_REPORTER;
  checkDsn(options.dsn);
  let client: SentryCore.Client | undefined;
  let core: typeof SentryCore | undefined;
  const loading = import('@sentry/core').then((mod) => {
    core = mod;
    client = startClient(mod, options, onSendError);
  });
  loading.catch(onSendError);
  const pending = new Set<Promise<void>>();
  let windowStart = Date.now();
  let sentInWindow = 0;
  let dropped = 0;

  const send = (err: unknown, context: ErrorContext) => {
    const tags: Record<string, string> = {};
    if (context.code) tags.code = context.code;
    if (context.bucket) tags.bucket = context.bucket;
    if (context.method) tags.method = context.method;
    if (context.status) tags.status = String(context.status);
    const capture = () => {
      const scope = new core!.Scope();
      scope.setTags(tags);
      client!.captureException(err, { mechanism: { type: 'cachegate', handled: context.code !== 'GW_ERR_INTERNAL' } }, scope);
    };
    if (client) return capture();
    // The SDK is still loading (an error in the first moments): send once it is.
    const p = loading.then(capture, () => {}).finally(() => pending.delete(p));
    pending.add(p);
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
      await loading.catch(() => {});
      await Promise.allSettled([...pending]);
      await client?.flush(SEND_TIMEOUT_MS);
    },
    get dropped() {
      return dropped;
    },
  };
}

function startClient(core: typeof SentryCore, options: SentryOptions, onSendError?: (err: unknown) => void): SentryCore.Client {
  const stackParser = core.createStackParser([50, parseNodeStackLine]);
  const server = hostname();
  class CachegateClient extends core.Client {
    constructor(clientOptions: SentryCore.ClientOptions) {
      super(clientOptions);
    }
    eventFromException(exception: unknown, hint?: SentryCore.EventHint): PromiseLike<SentryCore.Event> {
      return Promise.resolve(core.eventFromUnknownInput(this, stackParser, exception, hint));
    }
    eventFromMessage(message: SentryCore.ParameterizedString, level?: SentryCore.SeverityLevel, hint?: SentryCore.EventHint): PromiseLike<SentryCore.Event> {
      return Promise.resolve(core.eventFromMessage(stackParser, message, level, hint));
    }
  }
  const transport = (transportOptions: SentryCore.BaseTransportOptions) =>
    core.createTransport(transportOptions, async (request) => {
      try {
        const res = await fetch(transportOptions.url, {
          method: 'POST',
          headers: { 'content-type': 'application/x-sentry-envelope' },
          body: typeof request.body === 'string' ? request.body : Buffer.from(request.body),
          signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
        });
        await res.body?.cancel();
        return {
          statusCode: res.status,
          headers: { 'x-sentry-rate-limits': res.headers.get('x-sentry-rate-limits'), 'retry-after': res.headers.get('retry-after') },
        };
      } catch (err) {
        onSendError?.(err);
        throw err;
      }
    });
  const client = new CachegateClient({
    dsn: options.dsn,
    ...(options.environment ? { environment: options.environment } : {}),
    ...(options.release ? { release: options.release } : {}),
    transport,
    stackParser,
    integrations: [core.dedupeIntegration(), core.linkedErrorsIntegration()],
    maxBreadcrumbs: 0,
    beforeSend: (event) => ({ ...scrubEvent(event), platform: 'node', server_name: server }),
  });
  client.init();
  return client;
}

const BEARER_RE = /\b(bearer\s+)[A-Za-z0-9._~+/=-]+/gi;

/** Keep what helps debugging (exception chain, tags, release), mask anything secret-looking. */
export function scrubEvent(event: SentryCore.ErrorEvent): SentryCore.ErrorEvent {
  const mask = (s: string | undefined) => (s === undefined ? s : redactUrl(s).replace(BEARER_RE, '$1[redacted]'));
  delete event.request;
  delete event.user;
  delete event.breadcrumbs;
  delete event.extra;
  if (event.message) event.message = mask(event.message);
  for (const ex of event.exception?.values ?? []) ex.value = mask(ex.value);
  return event;
}

/** Sentry frames from a V8 stack line (`    at fn (file:line:col)`). */
function parseNodeStackLine(line: string): SentryCore.StackFrame | undefined {
  const m = /^\s*at (?:(.*?) \()?(.*?):(\d+):(\d+)\)?$/.exec(line);
  if (!m) return undefined;
  const filename = m[2]!.replace(/^file:\/\//, '');
  return {
    function: m[1] || '?',
    filename,
    lineno: Number(m[3]),
    colno: Number(m[4]),
    in_app: !filename.includes('/node_modules/') && !filename.startsWith('node:'),
  };
}
