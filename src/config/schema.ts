/**
 * The config file's schema, compatible with cachegate's YAML. Validated once at startup; the
 * rest of the code trusts the parsed `Config` type.
 */
import { z } from 'zod';
import { parseDurationMs, parseSize } from './size.js';

/** Values from env variables arrive as strings, so booleans accept "true"/"false"/"1"/"0" too. */
const bool = z.preprocess((v) => {
  if (typeof v !== 'string') return v;
  const s = v.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(s)) return true;
  if (['false', '0', 'no', 'off', ''].includes(s)) return false;
  return v;
}, z.boolean());

const size = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    return parseSize(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    return parseDurationMs(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

/** A non-empty string; env and YAML both may produce numbers for things like bucket names. */
const str = z
  .union([z.string(), z.number()], { error: (iss) => (iss.input === undefined ? 'required' : 'expected a string') })
  .transform(String)
  .pipe(z.string().min(1, 'must not be empty'));

/** A list that env mode may give as one comma-separated string. */
const strList = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v),
  z.array(str),
);

const cors = z
  .object({
    allowed_origins: strList,
    allowed_methods: strList.optional(),
    allowed_headers: strList.optional(),
    expose_headers: strList.optional(),
    max_age: z.coerce.number().int().nonnegative().optional(),
    allow_credentials: bool.optional(),
  })
  .refine((c) => !(c.allow_credentials && c.allowed_origins.includes('*')), {
    message: "allowed_origins '*' cannot be combined with allow_credentials",
  });

/** Options every store type takes. */
const storeCommon = {
  /** Per-store CORS for browsers (signed links in <video>, fetch from pages). */
  cors: cors.optional(),
  /** Cache-Control sent to clients; defaults: links `private, max-age=…`, bearer `private, no-store`. */
  cache_control: z
    .string()
    .regex(/^[\x20-\x7e]{1,512}$/, 'must be printable ASCII, at most 512 characters')
    .optional(),
};

const s3Store = z.object({
  ...storeCommon,
  type: z.literal('s3'),
  bucket: str,
  region: str.default('us-east-1'),
  access_key: str.optional(),
  secret_key: str.optional(),
  endpoint: str.optional(),
  allow_http: bool.default(false),
  /** Path-style addressing; defaults to true when `endpoint` is set (non-AWS stores). */
  force_path_style: bool.optional(),
  /** Most concurrent sockets to this store. */
  max_sockets: z.coerce.number().int().positive().default(256),
});

const azureStore = z.object({
  ...storeCommon,
  type: z.literal('azure'),
  container: str,
  connection_string: str,
});

const fsStore = z.object({
  ...storeCommon,
  type: z.literal('fs'),
  root: str,
});

const store = z.discriminatedUnion('type', [s3Store, azureStore, fsStore]);

const authKey = z.object({
  id: str,
  public_key: str,
  private_key: str.optional(),
});

export const authSchema = z
  .object({
    public_key: str.optional(),
    private_key: str.optional(),
    bearer_token: str.optional(),
    bearer_tokens: strList.default([]),
    keys: z.array(authKey).default([]),
    clock_skew: duration.default(0),
  })
  .default({ bearer_tokens: [], keys: [], clock_skew: 0 });

const cache = z
  .object({
    max_memory: size.default(256 * 2 ** 20),
    /** 0 or absent means `max_memory`, as in cachegate. */
    max_object_size: size.default(0),
    max_disk: size.default(0),
    disk_path: str.optional(),
  })
  .default({ max_memory: 256 * 2 ** 20, max_object_size: 0, max_disk: 0 });

const limits = z
  .object({
    max_upload_size: size.default(5 * 2 ** 30),
    /** Deadline for a store to answer (headers / metadata). */
    store_timeout: duration.default(30_000),
    /** Deadline between two body chunks from a store; a stalled stream fails, never hangs. */
    store_idle_timeout: duration.default(30_000),
  })
  .default({ max_upload_size: 5 * 2 ** 30, store_timeout: 30_000, store_idle_timeout: 30_000 });

const server = z
  .object({
    /** Time to receive a request's headers (slowloris on headers). */
    headers_timeout: duration.default(10_000),
    /** Time to receive a whole request, body included; 0 turns it off (uploads may be large). */
    request_timeout: duration.default(3_600_000),
    /** How long an idle keep-alive connection stays open. */
    keep_alive_timeout: duration.default(5_000),
    /** A connection with no bytes moving either way for this long is closed (slow bodies). */
    idle_timeout: duration.default(60_000),
    /** Largest request header block. */
    max_header_size: size.default(16 * 1024),
    /** How long in-flight transfers may run after SIGTERM/SIGINT before connections are cut. */
    shutdown_timeout: duration.default(30_000),
    /** How often each store is probed for readiness. */
    probe_interval: duration.default(10_000),
  })
  .default({
    headers_timeout: 10_000,
    request_timeout: 3_600_000,
    keep_alive_timeout: 5_000,
    idle_timeout: 60_000,
    max_header_size: 16 * 1024,
    shutdown_timeout: 30_000,
    probe_interval: 10_000,
  });

/** cachegate's optional Sentry section; `dsn: null` (or none) means off. */
const sentry = z
  .object({
    dsn: z.string().url('must be a Sentry DSN URL').nullable().optional(),
    environment: z.string().optional(),
    release: z.string().optional(),
  })
  .nullable()
  .optional();

/** The whole config file. Unknown keys are ignored so cachegate configs keep working. */
export const configSchema = z.object({
  listen: str.default('0.0.0.0:8080'),
  auth: authSchema,
  cache,
  limits,
  server,
  stores: z.record(z.string(), store).refine((s) => Object.keys(s).length > 0, 'at least one store is required'),
  sentry,
});

/** The parsed, validated config with defaults applied and sizes in bytes, durations in ms. */
export type Config = z.output<typeof configSchema>;
export type StoreConfig = z.output<typeof store>;
export type S3StoreConfig = z.output<typeof s3Store>;
export type AzureStoreConfig = z.output<typeof azureStore>;
export type FsStoreConfig = z.output<typeof fsStore>;
