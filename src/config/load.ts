/**
 * Where the config comes from: YAML files, the environment (cachegate's `CACHEGATE_CONFIG` or
 * flat `CACHEGATE__A__B` variables), several of them merged in order, or the embedded default.
 * Only this folder reads `process.env`; callers pass `env` in so tests can give their own.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { GatewayError } from '../errors.js';
import { mergeLayers, originOf, type Origins } from './merge.js';
import { authSchema, configSchema, type Config } from './schema.js';

/** One config layer: a YAML file or the environment. */
export type ConfigLayer = { kind: 'file'; path: string } | { kind: 'env' };

/**
 * Where to read the config: one layer, several layers merged in order (maps deep, lists
 * replaced; `env` may come last as an overlay), or the embedded default.
 */
export type ConfigSource = ConfigLayer | { kind: 'layers'; layers: ConfigLayer[] } | { kind: 'default' };

/** What a container or a user with no config at all is told. */
export const NO_CONFIG_HINT =
  'no config given: set CACHEGATE__… variables (CACHEGATE__STORES__<ID>__TYPE=fs, …) or CACHEGATE_CONFIG (the whole YAML), ' +
  'or pass --config FILE (see config.example.yaml)';

/** A loaded config, plus what was generated for it (the embedded default's bearer token). */
export interface LoadedConfig {
  config: Config;
  source: ConfigSource;
  generatedBearerToken?: string;
}

const ENV_PREFIX = 'CACHEGATE__';

/** Load and validate the config; throws a GatewayError whose message names each bad path. */
export async function loadConfig(source: ConfigSource, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  if (source.kind === 'default') {
    const token = randomBytes(32).toString('base64url');
    return { config: validateConfig(embeddedDefault(token)), source, generatedBearerToken: token };
  }
  const layers = source.kind === 'layers' ? source.layers : [source];
  if (layers.length === 0) throw new GatewayError('GW_ERR_CONFIG', NO_CONFIG_HINT);
  const read = [];
  for (const layer of layers) {
    if (layer.kind === 'file') {
      read.push({ name: layer.path, data: normalizeStoreIds(parseYamlText(await readConfigFile(layer.path), layer.path)) });
    } else {
      const data = configFromEnv(env);
      // `--config env` alone with nothing set: say how to give a config (a bare container).
      if (layers.length === 1 && isEmptyMap(data)) throw new GatewayError('GW_ERR_CONFIG', NO_CONFIG_HINT);
      read.push({ name: 'env', data: normalizeStoreIds(data) });
    }
  }
  const { data, origins } = mergeLayers(read);
  return { config: validateConfig(data, origins), source };
}

async function readConfigFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
    throw new GatewayError('GW_ERR_CONFIG', `cannot read config file ${file}: ${why}`, { cause: err });
  }
}

function isEmptyMap(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
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
  let data: unknown;
  try {
    data = parseYaml(text) ?? {};
  } catch (err) {
    // The yaml package's first line ends with "at line N, column M:".
    const firstLine = String((err as Error).message).split('\n')[0]!.replace(/:$/, '');
    throw new GatewayError('GW_ERR_CONFIG', `${where}: invalid YAML: ${firstLine}`, { cause: err });
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new GatewayError('GW_ERR_CONFIG', `${where}: the config must be a YAML map (key: value), not ${Array.isArray(data) ? 'a list' : typeof data}`);
  }
  return data;
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

/**
 * Validate raw config data; every problem is reported with its dotted path and, when `origins`
 * says which layer set it, the file (or `env`) it came from.
 */
export function validateConfig(raw: unknown, origins?: Origins): Config {
  const normalized = normalizeStoreIds(raw);
  const where = (path: readonly PropertyKey[]) => {
    const from = origins && originOf(origins, path);
    return from ? ` (from ${from})` : '';
  };
  const result = configSchema.safeParse(normalized);
  if (!result.success) {
    throw new GatewayError('GW_ERR_CONFIG', `invalid config:\n${formatIssues(result.error.issues, where)}`);
  }
  const config = result.data;
  if (config.cache.max_disk > 0 && !config.cache.disk_path) {
    throw new GatewayError('GW_ERR_CONFIG', `invalid config:\n  cache.disk_path: required when cache.max_disk > 0${where(['cache', 'max_disk'])}`);
  }
  for (const [id] of Object.entries(config.stores)) {
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(id)) {
      throw new GatewayError('GW_ERR_CONFIG', `invalid config:\n  stores.${id}: store ids use a-z, 0-9, '.', '_' and '-'${where(['stores', id])}`);
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

function formatIssues(issues: readonly z.core.$ZodIssue[], where: (path: readonly PropertyKey[]) => string = () => ''): string {
  return issues
    .map((i) => `  ${i.path.length ? i.path.map(String).join('.') : '(root)'}: ${i.message}${where(i.path)}`)
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
  const raw = parseYamlText(await readConfigFile(file), file) as { auth?: unknown; listen?: unknown };
  const result = authSchema.safeParse(raw.auth);
  if (!result.success) {
    throw new GatewayError('GW_ERR_CONFIG', `invalid config:\n${formatIssues(result.error.issues.map((i) => ({ ...i, path: ['auth', ...i.path] })))}`);
  }
  return { auth: result.data, listen: typeof raw.listen === 'string' ? raw.listen : undefined };
}
