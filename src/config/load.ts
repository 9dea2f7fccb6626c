/**
 * Where the config comes from: a YAML file, the environment (cachegate's `CACHEGATE_CONFIG` or
 * flat `CACHEGATE__A__B` variables), or the embedded default. Only this folder reads
 * `process.env`; callers pass `env` in so tests can give their own.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { GatewayError } from '../errors.js';
import { authSchema, configSchema, type Config } from './schema.js';

/** Where to read the config: a file path, the environment, or the embedded default. */
export type ConfigSource = { kind: 'file'; path: string } | { kind: 'env' } | { kind: 'default' };

/** A loaded config, plus what was generated for it (the embedded default's bearer token). */
export interface LoadedConfig {
  config: Config;
  source: ConfigSource;
  generatedBearerToken?: string;
}

const ENV_PREFIX = 'CACHEGATE__';

/** Load and validate the config; throws a GatewayError whose message names each bad path. */
export async function loadConfig(source: ConfigSource, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  switch (source.kind) {
    case 'file': {
      let text: string;
      try {
        text = await readFile(source.path, 'utf8');
      } catch (err) {
        throw new GatewayError('GW_ERR_CONFIG', `cannot read config file ${source.path}: ${(err as Error).message}`, { cause: err });
      }
      return { config: validateConfig(parseYamlText(text, source.path)), source };
    }
    case 'env':
      return { config: validateConfig(configFromEnv(env)), source };
    case 'default': {
      const token = randomBytes(32).toString('base64url');
      return { config: validateConfig(embeddedDefault(token)), source, generatedBearerToken: token };
    }
  }
}

/**
 * The embedded default: one directory store named `local` on `./data`, on loopback only, with a
 * bearer token generated for this run. Never an open gateway.
 */
export function embeddedDefault(bearerToken: string): unknown {
  return {
    listen: '127.0.0.1:8080',
    auth: { bearer_token: bearerToken },
    cache: { max_memory: '256MiB' },
    stores: { local: { type: 'fs', root: './data' } },
  };
}

function parseYamlText(text: string, where: string): unknown {
  try {
    return parseYaml(text) ?? {};
  } catch (err) {
    const firstLine = String((err as Error).message).split('\n')[0];
    throw new GatewayError('GW_ERR_CONFIG', `${where}: invalid YAML: ${firstLine}`, { cause: err });
  }
}

/**
 * cachegate's env mode: `CACHEGATE_CONFIG` holds the whole YAML; otherwise every
 * `CACHEGATE__A__B=value` sets `a.b`, with names case-insensitive. Store ids are lowercased as
 * cachegate does. Numeric path parts make arrays (`CACHEGATE__AUTH__KEYS__0__ID`).
 */
export function configFromEnv(env: NodeJS.ProcessEnv): unknown {
  const whole = env.CACHEGATE_CONFIG;
  if (whole !== undefined && whole.trim() !== '') return parseYamlText(whole, 'CACHEGATE_CONFIG');

  const root: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || !name.toUpperCase().startsWith(ENV_PREFIX)) continue;
    const parts = name.slice(ENV_PREFIX.length).split('__').map((p) => p.toLowerCase());
    if (parts.some((p) => p === '')) {
      throw new GatewayError('GW_ERR_CONFIG', `${name}: empty name segment`);
    }
    let node = root;
    for (const [i, part] of parts.entries()) {
      if (part === '__proto__' || part === 'constructor' || part === 'prototype') {
        throw new GatewayError('GW_ERR_CONFIG', `${name}: reserved name segment '${part}'`);
      }
      if (i === parts.length - 1) {
        node[part] = value;
      } else {
        const next = node[part];
        if (next !== undefined && (typeof next !== 'object' || next === null)) {
          throw new GatewayError('GW_ERR_CONFIG', `${name}: '${parts.slice(0, i + 1).join('.')}' is both a value and a section`);
        }
        node = (next as Record<string, unknown> | undefined) ?? (node[part] = {});
      }
    }
  }
  return arraysFromNumericKeys(root);
}

function arraysFromNumericKeys(node: unknown): unknown {
  if (typeof node !== 'object' || node === null) return node;
  const obj = node as Record<string, unknown>;
  const keys = Object.keys(obj);
  for (const k of keys) obj[k] = arraysFromNumericKeys(obj[k]);
  if (keys.length > 0 && keys.every((k) => /^\d+$/.test(k))) {
    return keys.sort((a, b) => Number(a) - Number(b)).map((k) => obj[k]);
  }
  return obj;
}

/** Validate raw config data; every problem is reported with its dotted path. */
export function validateConfig(raw: unknown): Config {
  const normalized = normalizeStoreIds(raw);
  const result = configSchema.safeParse(normalized);
  if (!result.success) {
    throw new GatewayError('GW_ERR_CONFIG', `invalid config:\n${formatIssues(result.error.issues)}`);
  }
  const config = result.data;
  if (config.cache.max_object_size === 0) config.cache.max_object_size = config.cache.max_memory;
  if (config.cache.max_disk > 0 && !config.cache.disk_path) {
    throw new GatewayError('GW_ERR_CONFIG', 'invalid config:\n  cache.disk_path: required when cache.max_disk > 0');
  }
  for (const [id] of Object.entries(config.stores)) {
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(id)) {
      throw new GatewayError('GW_ERR_CONFIG', `invalid config:\n  stores.${id}: store ids use a-z, 0-9, '.', '_' and '-'`);
    }
  }
  const a = config.auth;
  if (!a.bearer_token && a.bearer_tokens.length === 0 && !a.public_key && !a.private_key && a.keys.length === 0) {
    throw new GatewayError(
      'GW_ERR_CONFIG',
      'invalid config:\n  auth: set bearer_token, bearer_tokens, public_key or keys (an open gateway is not supported)',
    );
  }
  try {
    parseListen(config.listen);
  } catch (err) {
    throw new GatewayError('GW_ERR_CONFIG', `invalid config:\n  listen: ${(err as Error).message}`);
  }
  return config;
}

function normalizeStoreIds(raw: unknown): unknown {
  if (typeof raw !== 'object' || raw === null) return raw;
  const r = raw as Record<string, unknown>;
  const stores = r.stores;
  if (typeof stores !== 'object' || stores === null || Array.isArray(stores)) return raw;
  const lowered: Record<string, unknown> = {};
  for (const [id, s] of Object.entries(stores)) lowered[id.toLowerCase()] = s;
  return { ...r, stores: lowered };
}

function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((i) => `  ${i.path.length ? i.path.map(String).join('.') : '(root)'}: ${i.message}`)
    .join('\n');
}

/** Parse `host:port`, `:port`, `port` or `[v6]:port` into a host and a port. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen) ?? /^()()(\d+)$/.exec(listen);
  if (!m) throw new Error(`'${listen}' is not host:port`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`port ${port} is out of range`);
  return { host: m[1] || m[2] || '0.0.0.0', port };
}

/** Process-level settings that come only from the environment. */
export interface RuntimeEnv {
  logLevel: string;
  /** Pretty log lines: stdout is a TTY (LOG_FORMAT=json|pretty overrides). */
  prettyLogs: boolean;
}

/** Read `LOG_LEVEL` and friends. */
export function readRuntimeEnv(env: NodeJS.ProcessEnv = process.env, stdoutIsTty = process.stdout.isTTY === true): RuntimeEnv {
  const format = env.LOG_FORMAT?.trim().toLowerCase();
  return {
    logLevel: env.LOG_LEVEL?.trim().toLowerCase() || 'info',
    prettyLogs: format === 'pretty' || (format !== 'json' && stdoutIsTty),
  };
}

/**
 * The parts of a config file the key commands need (`auth`, `listen`), validated without
 * requiring stores: `sign`/`verify --config` accept the file `keygen` writes as well as a whole
 * gateway config.
 */
export async function loadKeysConfig(file: string): Promise<{ auth: Config['auth']; listen: string | undefined }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new GatewayError('GW_ERR_CONFIG', `cannot read config file ${file}: ${(err as Error).message}`, { cause: err });
  }
  const raw = (parseYamlText(text, file) ?? {}) as { auth?: unknown; listen?: unknown };
  const result = authSchema.safeParse(raw.auth);
  if (!result.success) {
    throw new GatewayError('GW_ERR_CONFIG', `invalid config:\n${formatIssues(result.error.issues.map((i) => ({ ...i, path: ['auth', ...i.path] })))}`);
  }
  return { auth: result.data, listen: typeof raw.listen === 'string' ? raw.listen : undefined };
}
