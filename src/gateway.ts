/**
 * Wiring: build every component from a validated config, and start or stop the HTTP server.
 * Nothing here runs at import; `main.ts` and the tests call these.
 */
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:http';
import { serve } from '@hono/node-server';
import { buildApp } from './app.js';
import { GatewayError } from './errors.js';
import { createBearerVerifier } from './auth/bearer.js';
import { createKeyring } from './auth/keys.js';
import { createLinkVerifier } from './auth/token.js';
import { createDiskTier, type DiskTier } from './cache/disk-tier.js';
import { createMemoryTier } from './cache/memory-tier.js';
import type { Config } from './config/schema.js';
import { createObjectService, type ObjectService } from './core/object-service.js';
import type { CoreEventListener } from './core/events.js';
import { Readiness } from './core/readiness.js';
import { createFastPath } from './http/fast-path.js';
import type { Logger } from './metrics/log.js';
import { createMetrics, type Metrics } from './metrics/metrics.js';
import { createErrorReporter, type ErrorReporter } from './metrics/sentry.js';
import { createStoreRegistry, type StoreRegistry } from './stores/registry.js';
import type { MemoryTier } from './cache/memory-tier.js';

export interface Gateway {
  config: Config;
  stores: StoreRegistry;
  memory: MemoryTier;
  disk: DiskTier | undefined;
  service: ObjectService;
  app: ReturnType<typeof buildApp>;
  /** Start the disk tier (its index rebuild continues in the background); `listen` calls it. */
  start(): Promise<void>;
  /** Start listening; resolves with the bound address. */
  listen(host?: string, port?: number): Promise<{ url: string; server: Server }>;
  readiness: Readiness;
  metrics: Metrics;
  errors: ErrorReporter;
  /**
   * Graceful stop: readiness turns 503, the listener stops, idle keep-alive sockets close, and
   * in-flight transfers get up to `server.shutdown_timeout` before connections are cut. Then
   * pending disk writes finish and stores are released.
   */
  shutdown(): Promise<void>;
  /** Immediate stop: cut every connection, release everything (tests). */
  close(): Promise<void>;
}

export interface GatewayDeps {
  log: Logger;
  /** Overrides the stores built from config (tests, embedding). */
  stores?: StoreRegistry;
  onCoreEvent?: CoreEventListener;
  /** Access lines at info level (default true). */
  accessLog?: boolean;
}

/** Build a gateway from a validated config. */
export function createGateway(config: Config, deps: GatewayDeps): Gateway {
  const stores =
    deps.stores ?? createStoreRegistry(config.stores, { storeTimeoutMs: config.limits.store_timeout });
  // The tiers callback runs only at scrape time, after both tiers exist.
  const m: Metrics = createMetrics({
    tiers: () => (disk ? [memory, disk] : [memory]).map((t) => ({ name: t.name, ...t.stats() })),
  });
  const onTierEvent = (e: Parameters<Metrics['onTierEvent']>[0]) => m.onTierEvent(e);
  const memory = createMemoryTier({ maxBytes: config.cache.max_memory, maxEntryBytes: config.cache.max_memory, onEvent: onTierEvent });
  const disk =
    config.cache.max_disk > 0 && config.cache.disk_path
      ? createDiskTier({
          dir: config.cache.disk_path,
          maxBytes: config.cache.max_disk,
          maxEntryBytes: config.cache.max_object_size,
          onEvent: onTierEvent,
          onError: (op, err) => {
            m.diskError(op);
            deps.log.error({ op, err: (err as Error)?.message }, 'disk tier problem; serving on');
          },
        })
      : undefined;
  const service = createObjectService({
    stores,
    memory,
    disk,
    maxObjectBytes: config.cache.max_object_size,
    storeTimeoutMs: config.limits.store_timeout,
    storeIdleTimeoutMs: config.limits.store_idle_timeout,
    onEvent: (e) => {
      m.onCoreEvent(e);
      deps.onCoreEvent?.(e);
    },
  });
  const bearerTokens = [...(config.auth.bearer_token ? [config.auth.bearer_token] : []), ...config.auth.bearer_tokens];
  const keys = createKeyring(config.auth);
  const auth = {
    bearer: createBearerVerifier(bearerTokens),
    onFailure: (method: string) => m.authFail(method),
    ...(keys.length > 0 ? { links: createLinkVerifier({ keys, clockSkewMs: config.auth.clock_skew }) } : {}),
  };
  const readiness = new Readiness({
    stores,
    intervalMs: config.server.probe_interval,
    timeoutMs: config.limits.store_timeout,
    onProbeFailed: (storeId, err) => deps.log.warn({ store: storeId, err: (err as Error)?.message }, 'store probe failed'),
  });
  let errors: ErrorReporter;
  try {
    errors = config.sentry?.dsn
      ? createErrorReporter(
          { dsn: config.sentry.dsn, environment: config.sentry.environment, release: config.sentry.release },
          (err) => deps.log.debug({ err: (err as Error)?.message }, 'sentry send failed'),
        )
      : createErrorReporter(undefined);
  } catch (err) {
    throw new GatewayError('GW_ERR_CONFIG', `invalid config:\n  sentry.dsn: ${(err as Error).message}`);
  }
  const storeOptions = new Map(
    Object.entries(config.stores).map(([id, sc]) => [id, { cors: sc.cors, cacheControl: sc.cache_control }]),
  );
  const accessLog = deps.accessLog ?? true;
  const onRequest = (r: Parameters<Metrics['observeRequest']>[0]) => m.observeRequest(r);
  const fastPath = createFastPath({ service, auth, storeOptions, log: deps.log, accessLog, onRequest });
  const app = buildApp({
    service,
    onServerError: (err, ctx) => errors.capture(err, ctx),
    auth,
    log: deps.log,
    maxUploadBytes: config.limits.max_upload_size,
    accessLog,
    onRequest,
    storeOptions,
    admin: {
      ready: () => readiness.ready(),
      stats: () => m.stats(),
      metrics: async () => ({ contentType: m.contentType, text: await m.metricsText() }),
    },
  });

  let server: Server | undefined;
  let started: Promise<void> | undefined;
  const start = () =>
    (started ??= (async () => {
      await disk?.start();
      void readiness.start(); // /ready answers 503 until every store has answered
    })());
  const release = async () => {
    readiness.stop();
    await disk?.close();
    await stores.closeAll();
    await errors.flush();
  };
  return {
    config,
    stores,
    memory,
    disk,
    service,
    app,
    start,
    async listen(host, port) {
      await start();
      return new Promise((resolve, reject) => {
        const sc = config.server;
        const s = serve({
          fetch: app.fetch,
          hostname: host ?? '127.0.0.1',
          port: port ?? 0,
          // Plain memory hits are answered before Hono (http/fast-path.ts); the rest goes on.
          createServer: ((options: object, listener: (req: never, res: never) => void) =>
            createServer(options, (req, res) => {
              if (!fastPath(req, res)) listener(req as never, res as never);
            })) as never,
          serverOptions: {
            maxHeaderSize: sc.max_header_size,
            headersTimeout: sc.headers_timeout,
            requestTimeout: sc.request_timeout,
            keepAliveTimeout: sc.keep_alive_timeout,
            // Node checks headers/request deadlines only this often (default 30 s).
            connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(Math.min(sc.headers_timeout, sc.request_timeout || Infinity) / 4))),
          },
        }) as Server;
        // No bytes either way for this long (a stalled body, a client that stopped reading): close.
        s.setTimeout(sc.idle_timeout, (socket) => socket.destroy());
        s.on('clientError', answerClientError);
        s.once('error', reject);
        s.once('listening', () => {
          s.off('error', reject);
          server = s;
          const addr = s.address() as AddressInfo;
          const h = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
          resolve({ url: `http://${h}:${addr.port}`, server: s });
        });
      });
    },
    readiness,
    metrics: m,
    errors,
    async shutdown() {
      readiness.drain();
      const s = server;
      server = undefined;
      if (s) {
        const closed = new Promise<void>((resolve) => s.close(() => resolve()));
        // Keep-alive sockets become idle as their responses finish: close them as they do.
        const sweep = setInterval(() => s.closeIdleConnections(), 100);
        s.closeIdleConnections();
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), config.server.shutdown_timeout)));
        if (await Promise.race([closed.then(() => false), timedOut])) {
          deps.log.warn({ timeout_ms: config.server.shutdown_timeout }, 'shutdown timeout: cutting remaining connections');
          s.closeAllConnections();
          await closed;
        }
        clearTimeout(timer);
        clearInterval(sweep);
      }
      await release();
    },
    async close() {
      readiness.drain();
      const s = server;
      server = undefined;
      if (s) {
        const closed = new Promise<void>((resolve) => s.close(() => resolve()));
        s.closeAllConnections();
        await closed;
      }
      await release();
    },
  };
}

/**
 * Requests Node's HTTP parser refuses (a malformed or negative Content-Length, bad header bytes,
 * oversized headers) get a one-line JSON reason instead of a bare 400, and the socket is closed.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: import('node:stream').Duplex): void {
  if (!socket.writable || (err.code === 'ECONNRESET' && !socket.readable)) {
    socket.destroy();
    return;
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
  const status = tooLarge ? '431 Request Header Fields Too Large' : timedOut ? '408 Request Timeout' : '400 Bad Request';
  const body = JSON.stringify({ error: tooLarge ? 'request headers too large' : timedOut ? 'request not received in time' : 'malformed HTTP request', code: 'GW_ERR_BAD_REQUEST' });
  socket.end(`HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}
