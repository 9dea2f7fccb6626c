import { Writable } from 'node:stream';
import { pino } from 'pino';

/** A pino logger that keeps what it writes, for tests that read the gateway's log back. */
export function captureLog(level: pino.Level = 'info'): {
  log: pino.Logger;
  /** Everything logged so far, as written. */
  text: () => string;
  /** Everything logged so far, one parsed record per line. */
  lines: <T = Record<string, unknown>>() => T[];
} {
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString('utf8');
      cb();
    },
  });
  return {
    log: pino({ level }, sink),
    text: () => text,
    lines: <T>() =>
      text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as T),
  };
}
