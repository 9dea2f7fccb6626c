/**
 * The config file's schema, compatible with cachegate's YAML. Validated once at startup; the
 * rest of the code trusts the parsed `Config` type.
 */
import { hostname } from 'node:os';
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

/** A node id goes into a response header: a short token of safe characters. */
const nodeId = str.pipe(z.string().regex(/^[A-Za-z0-9._:@-]{1,128}$/, "use at most 128 of A-Z a-z 0-9 . _ : @ -"));

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

/** Store failures `stale_if_error` may cover, each switchable (see core/freshness.ts). */
export const STORE_FAILURE_CLASSES = ['connect', '5xx', 'throttle', 'timeout'] as const;
export type StoreFailureClass = (typeof STORE_FAILURE_CLASSES)[number];

/**
 * How a store's objects are cached (core/freshness.ts decides from it). `immutable`: a hit
 * never asks the store. `revalidate`: after `max_age` a hit asks the store with the stored ETag.
 * `no_store`: every request passes through, nothing is cached.
 */
const storeCache = z
  .object({
    policy: z.enum(['immutable', 'revalidate', 'no_store']).default('immutable'),
    /** Under `revalidate`: how long a copy is served without asking the store. */
    max_age: duration.default(0),
    /** Past max_age, for this long more the old copy is served while one revalidation runs. */
    stale_while_revalidate: duration.default(0),
    /** When the store is down, a copy younger than max_age + this is served (with Age). */
    stale_if_error: duration.default(0),
    /** Which failures count as "down" for stale_if_error. */
    stale_if_error_on: z
      .preprocess((v) => (typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter(Boolean) : v), z.array(z.enum(STORE_FAILURE_CLASSES)))
      .default([...STORE_FAILURE_CLASSES]),
    /** How long a 404 is remembered (0: never). A PUT or DELETE through the gateway ends it. */
    negative_ttl: duration.default(0),
  });

/** A store without a `cache` section: every key at its default. */
export const DEFAULT_STORE_CACHE: StoreCacheConfig = storeCache.parse({});

/** Options every store type takes. */
const storeCommon = {
  /** Freshness: immutable (default), revalidate or no_store, with stale and negative caching. */
  cache: storeCache.optional(),
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
  /**
   * Static keys. Without them the AWS SDK's default credential chain is used: env variables,
   * shared config/SSO profiles, web identity (EKS IRSA, pod identity), ECS and EC2 instance roles.
   */
  access_key: str.optional(),
  secret_key: str.optional(),
  endpoint: str.optional(),
  allow_http: bool.default(false),
  /** Path-style addressing; defaults to true when `endpoint` is set (non-AWS stores). */
  force_path_style: bool.optional(),
  /** Most concurrent sockets to this store. */
  max_sockets: z.coerce.number().int().positive().default(256),
});

/**
 * Azure: exactly one of `connection_string` (account key) or `account_url`; with `account_url`,
 * `sas_token` signs requests, and without it `DefaultAzureCredential` (managed identity,
 * workload identity, environment, Azure CLI) does.
 */
const azureStore = z.object({
  ...storeCommon,
  type: z.literal('azure'),
  container: str,
  connection_string: str.optional(),
  /** `https://<account>.blob.core.windows.net` (no container). */
  account_url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  /** A SAS token (with or without the leading `?`) for `account_url`. */
  sas_token: str.optional(),
});

const fsStore = z.object({
  ...storeCommon,
  type: z.literal('fs'),
  root: str,
});

const store = z.discriminatedUnion('type', [
  s3Store.refine((s) => !s.access_key === !s.secret_key, {
    message: 'set both access_key and secret_key, or neither (the AWS default credential chain)',
  }),
  azureStore.superRefine((s, ctx) => {
    if (!s.connection_string && !s.account_url) {
      ctx.addIssue({ code: 'custom', path: ['connection_string'], message: 'required (or account_url, with sas_token or DefaultAzureCredential)' });
    } else if (s.connection_string && s.account_url) {
      ctx.addIssue({ code: 'custom', path: ['account_url'], message: 'set connection_string or account_url, not both' });
    }
    if (s.sas_token && !s.account_url) ctx.addIssue({ code: 'custom', path: ['sas_token'], message: 'needs account_url' });
  }),
  fsStore,
]);

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
    /** `Authorization: Bearer <admin_token>` for POST /admin/purge; bearer tokens are not admin tokens. */
    admin_token: str.optional(),
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
    /** Objects larger than this are cached as aligned slices of this size (0: the default, 8 MiB). */
    slice_size: size.default(0),
    /** Bytes all fills in flight may hold together (0: the default, see config/resolve.ts). */
    max_fill_memory: size.default(0),
  })
  .default({ max_memory: 256 * 2 ** 20, max_object_size: 0, max_disk: 0, slice_size: 0, max_fill_memory: 0 });

const limits = z
  .object({
    max_upload_size: size.default(5 * 2 ** 30),
    /** Deadline for a store to answer (headers / metadata). */
    store_timeout: duration.default(30_000),
    /** Deadline between two body chunks from a store; a stalled stream fails, never hangs. */
    store_idle_timeout: duration.default(30_000),
    /** Extra attempts of a store read after a connection error, 5xx or throttling (within store_timeout). */
    store_retries: z.coerce.number().int().min(0).max(10).default(2),
    /** Consecutive store failures that open its circuit breaker (0: no breaker). */
    breaker_failures: z.coerce.number().int().min(0).default(5),
    /** How long an open breaker fails misses fast before one probe may try the store. */
    breaker_cooldown: duration.default(10_000),
    /** Most store calls in flight per store (0: no cap); more wait in a queue. */
    store_max_concurrent: z.coerce.number().int().min(0).default(1024),
    /** Longest wait in that queue; past it the answer is 503. */
    store_queue_timeout: duration.default(5_000),
    /** Hedge a GET not answered by this quantile of recent GET latencies (e.g. 0.95); null: off. */
    hedge_quantile: z.union([z.null(), z.coerce.number().gt(0).lt(1)]).default(null),
  })
  .default({
    max_upload_size: 5 * 2 ** 30,
    store_timeout: 30_000,
    store_idle_timeout: 30_000,
    store_retries: 2,
    breaker_failures: 5,
    breaker_cooldown: 10_000,
    store_max_concurrent: 1024,
    store_queue_timeout: 5_000,
    hedge_quantile: null,
  });

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
    /** This node's name in a cluster: in /stats, every log line and (when on) `X-CG-Node`. */
    node_id: nodeId.default(() => hostname()),
    /** Send `X-CG-Node: <node_id>` on every response (off: it names hosts to clients). */
    node_header: bool.default(false),
  })
  .default(() => ({
    headers_timeout: 10_000,
    request_timeout: 3_600_000,
    keep_alive_timeout: 5_000,
    idle_timeout: 60_000,
    max_header_size: 16 * 1024,
    shutdown_timeout: 30_000,
    probe_interval: 10_000,
    node_id: hostname(),
    node_header: false,
  }));

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
export type StoreCacheConfig = z.output<typeof storeCache>;
