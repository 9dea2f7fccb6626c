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

/**
 * Process-level output through the logger, so that in JSON mode every line parses: Node's
 * warnings (the AWS SDK's NodeVersionSupportWarning among them) become one warn line each, once
 * per distinct warning, instead of Node's plain-text print; an uncaught exception (or unhandled
 * rejection, which Node raises as one) becomes one fatal line, then `onCrash` runs (Sentry) and
 * the process exits 1.
 */
export function routeProcessOutput(log: Logger, onCrash: (err: Error) => Promise<void> = async () => {}): void {
  // Node prints warnings from its own 'warning' listener; removing it is the documented way to
  // replace that print (the alternative, --no-warnings, would need a flag on every start).
  process.removeAllListeners('warning');
  const seen = new Set<string>();
  process.on('warning', (warning) => {
    const key = `${warning.name}\0${warning.message}`;
    if (seen.has(key)) return;
    seen.add(key);
    const code = (warning as { code?: string }).code;
    log.warn({ warning: warning.name, ...(code ? { code } : {}) }, warning.message.replace(/\s+/g, ' ').trim());
  });
  let crashing = false;
  process.on('uncaughtException', (err, origin) => {
    if (crashing) return;
    crashing = true;
    const e = err instanceof Error ? err : new Error(String(err));
    log.fatal({ err: e.message, type: e.name, origin, stack: e.stack }, 'uncaught exception; exiting');
    process.exitCode = 1;
    const exit = () => process.stdout.write('', () => process.stderr.write('', () => process.exit(1)));
    setTimeout(exit, 3_000).unref();
    onCrash(e).then(exit, exit);
  });
}
