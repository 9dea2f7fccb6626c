/**
 * The logger: pino JSON lines. Secrets never reach a log: the `sig` query value and the
 * Authorization header are redacted wherever they appear.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/** Paths pino redacts in any logged object. */
export const REDACT_PATHS = [
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'request.headers.authorization',
  'sig',
  'query.sig',
  'auth.bearer_token',
  'auth.bearer_tokens',
  'auth.private_key',
];

export interface LoggerOptions {
  level?: string;
  /** Where lines go; defaults to stdout. */
  destination?: NodeJS.WritableStream;
  /** Human-readable lines (when stdout is a TTY); JSON lines otherwise. */
  pretty?: boolean;
}

/** Build the process logger. */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.pretty ? pretty({ colorize: true, destination: options.destination ?? process.stdout }) : (options.destination ?? process.stdout),
  );
}

/** Remove the `sig` value from a URL or path+query before it is logged. */
export function redactUrl(url: string): string {
  return url.replace(/([?&]sig=)[^&#]*/gi, '$1[redacted]');
}
