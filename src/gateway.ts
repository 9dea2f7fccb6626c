/**
 * Wiring: build every component from a validated config, and start or stop the HTTP server.
 * Nothing here runs at import; `main.ts` and the tests call these.
 */
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import { buildApp } from './app.js';
import { GatewayError } from './errors.js';
import { createBearerVerifier } from './auth/bearer.js';
import { createKeyring } from './auth/keys.js';
import { createLinkVerifier } from './auth/token.js';
import { createDiskTier, type DiskTier } from './cache/disk-tier.js';
import { createMemoryTier } from './cache/memory-tier.js';
import { resolveConfig } from './config/resolve.js';
import type { Config } from './config/schema.js';
import { createObjectService, type ObjectService } from './core/object-service.js';
import type { CoreEventListener } from './core/events.js';
import { Readiness } from './core/readiness.js';
import { DEFAULT_RETRY_BASE_MS } from './core/store-guard.js';
import { createRequestRecorder } from './http/access-log.js';
import { createFastPath } from './http/fast-path.js';
import type { ServerErrorListener } from './http/error-response.js';
import { createResponseHeaders } from './http/response-headers.js';
import { cutIdleConnections } from './http/idle-sweep.js';
import { createRequestGate, pendingResponse, type RequestHandler } from './http/request-gate.js';
import { keepTickShape } from './http/tick-shape.js';
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

/** The optional response header naming the node that answered (`server.node_header`). */
export const X_CG_NODE = 'x-cg-node';

export interface GatewayDeps {
  log: Logger;
  /** Overrides the stores built from config (tests, embedding). */
  stores?: StoreRegistry;
  onCoreEvent?: CoreEventListener;
  /** Access lines at info level (default true). */
  accessLog?: boolean;
}

/** Build a gateway from a validated config. */
export function createGateway(config: Config, gatewayDeps: GatewayDeps): Gateway {
  // Every log line (access lines included) names the node, so a cluster's logs can be merged.
  const deps = { ...gatewayDeps, log: gatewayDeps.log.child({ node_id: config.server.node_id }) };
  const stores =
    deps.stores ?? createStoreRegistry(config.stores, { storeTimeoutMs: config.limits.store_timeout });
  // The tiers callback runs only at scrape time, after both tiers exist.
  const m: Metrics = createMetrics({
    nodeId: config.server.node_id,
    tiers: () => (disk ? [memory, disk] : [memory]).map((t) => ({ name: t.name, ...t.stats() })),
    storeQueues: () => service.storeQueues(),
  });
  const onTierEvent = (e: Parameters<Metrics['onTierEvent']>[0]) => m.onTierEvent(e);
  const limits = resolveConfig(config);
  const memory = createMemoryTier({ ...limits.memory, onEvent: onTierEvent });
  const disk =
    limits.disk
      ? createDiskTier({
          ...limits.disk,
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
    limits,
    storeTimeoutMs: config.limits.store_timeout,
    storeIdleTimeoutMs: config.limits.store_idle_timeout,
    policies: new Map(Object.entries(config.stores).map(([id, s]) => [id, s.cache])),
    protection: {
      retries: config.limits.store_retries,
      retryBaseMs: DEFAULT_RETRY_BASE_MS,
      breakerFailures: config.limits.breaker_failures,
      breakerCooldownMs: config.limits.breaker_cooldown,
      maxConcurrent: config.limits.store_max_concurrent,
      queueTimeoutMs: config.limits.store_queue_timeout,
      hedgeQuantile: config.limits.hedge_quantile ?? undefined,
    },
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
  const recorder = createRequestRecorder({ log: deps.log, enabled: deps.accessLog ?? true, onRequest: (r) => m.observeRequest(r) });
  const headers = createResponseHeaders(storeOptions);
  const onServerError: ServerErrorListener = (err, ctx) => errors.capture(err, ctx);
  const fastPath = createFastPath({ service, auth, headers, recorder, log: deps.log, onServerError });
  const app = buildApp({
    service,
    onServerError,
    auth,
    log: deps.log,
    maxUploadBytes: config.limits.max_upload_size,
    recorder,
    storeOptions,
    headers,
    admin: {
      purge: {
        admin: createBearerVerifier(config.auth.admin_token ? [config.auth.admin_token] : []),
        bearer: auth.bearer,
        run: async (bucket, target) => (await service.purge(bucket, target)).purged,
      },
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
      // Before any request: V8 otherwise loses the shape of Node's tick objects to idle GCs (http/tick-shape.ts).
      keepTickShape();
      await start();
      return new Promise((resolve, reject) => {
        const sc = config.server;
        const hostname = host ?? '127.0.0.1';
        const hono = getRequestListener(app.fetch, {
          hostname,
          // The gate refuses what the adapter cannot parse; anything left still gets JSON.
          errorHandler: () => badRequestResponse(),
        });
        // Every request passes the gate (http/request-gate.ts); plain memory hits are then
        // answered before Hono (http/fast-path.ts), and the rest goes on to the routes.
        const gate = createRequestGate({
          recorder,
          handle: (req, res) => {
            if (!fastPath(req, res)) void hono(req, res);
          },
        });
        // `server.node_header`: every answer (refusals, fast path, routes) merges this header in.
        const nodeHeader = sc.node_header ? sc.node_id : undefined;
        const withNode = (handler: RequestHandler): RequestHandler =>
          nodeHeader === undefined
            ? handler
            : (req, res) => {
                res.setHeader(X_CG_NODE, nodeHeader);
                handler(req, res);
              };
        const s = createServer(
          {
            maxHeaderSize: sc.max_header_size,
            headersTimeout: sc.headers_timeout,
            requestTimeout: sc.request_timeout,
            keepAliveTimeout: sc.keep_alive_timeout,
            // Node checks headers/request deadlines only this often (default 30 s).
            connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(Math.min(sc.headers_timeout, sc.request_timeout || Infinity) / 4))),
            // The gate answers a missing Host with the JSON error, not Node's bare 400.
            requireHostHeader: false,
          },
          withNode(gate.onRequest),
        );
        s.on('checkContinue', withNode(gate.onCheckContinue));
        // No bytes either way for this long (a stalled body, a client that stopped reading): close.
        cutIdleConnections(s, sc.idle_timeout);
        s.on('clientError', answerClientError);
        s.once('error', reject);
        s.listen(port ?? 0, hostname);
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

function badRequestResponse(): Response {
  return new Response(JSON.stringify({ error: 'malformed HTTP request', code: 'GW_ERR_BAD_REQUEST' }), {
    status: 400,
    headers: { 'content-type': 'application/json', connection: 'close' },
  });
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
  // Bytes after a request that is still being answered (a body sent after a PUT that had no
  // length, say): that answer goes out first, and the connection closes after it.
  const pending = pendingResponse(socket);
  // (If that request's own body is incomplete, the error is about it: handled below as before.)
  if (pending?.req.complete) {
    pending.shouldKeepAlive = false;
    pending.once('close', () => socket.destroy());
    return;
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
  const status = tooLarge ? '431 Request Header Fields Too Large' : timedOut ? '408 Request Timeout' : '400 Bad Request';
  const body = JSON.stringify({ error: tooLarge ? 'request headers too large' : timedOut ? 'request not received in time' : 'malformed HTTP request', code: 'GW_ERR_BAD_REQUEST' });
  socket.end(`HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}
