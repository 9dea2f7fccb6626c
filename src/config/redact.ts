/**
 * A resolved config fit to print (`cachegate config check`): every secret replaced by
 * `[redacted]`, everything else as the gateway will use it (sizes in bytes, durations in ms).
 */
import type { Config } from './schema.js';

const REDACTED = '[redacted]';
/** Keys whose values are secrets wherever they appear. */
const SECRET_KEYS = new Set(['bearer_token', 'bearer_tokens', 'private_key', 'secret_key', 'access_key', 'connection_string', 'sas_token']);

/** A deep copy of `config` with secrets masked; a Sentry DSN keeps its host but not its key. */
export function redactConfig(config: Config): unknown {
  return walk(config, []);
}

function walk(value: unknown, path: string[]): unknown {
  const key = path.at(-1);
  if (key !== undefined && SECRET_KEYS.has(key) && value !== undefined && value !== null) {
    return Array.isArray(value) ? value.map(() => REDACTED) : REDACTED;
  }
  if (key === 'dsn' && typeof value === 'string') return maskUrlSecrets(value);
  if (key === 'account_url' && typeof value === 'string') return maskUrlSecrets(value);
  if (Array.isArray(value)) return value.map((v, i) => walk(v, [...path, String(i)]));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, [...path, k])]));
  }
  return value;
}

function maskUrlSecrets(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.username) url.username = 'redacted';
    if (url.password) url.password = '';
    if (url.search) url.search = `?${REDACTED}`;
    return url.toString();
  } catch {
    return REDACTED;
  }
}
