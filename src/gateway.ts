/**
 * Wiring: build every component from a validated config, and start or stop the HTTP server.
 * Nothing here runs at import; `main.ts` and the tests call these.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { buildApp } from './app.js';
import { createBearerVerifier } from './auth/bearer.js';
import { createKeyring } from './auth/keys.js';
import { createLinkVerifier } from './auth/token.js';
import { createDiskTier, type DiskTier } from './cache/disk-tier.js';
import { createMemoryTier } from './cache/memory-tier.js';
import type { Config } from './config/schema.js';
import { createObjectService, type ObjectService } from './core/object-service.js';
import type { CoreEventListener } from './core/events.js';
import type { Logger } from './metrics/log.js';
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
  /** Stop accepting, close idle sockets, release stores. */
  close(): Promise<void>;
}

export interface GatewayDeps {
  log: Logger;
  /** Overrides the stores built from config (tests, embedding). */
  stores?: StoreRegistry;
  onCoreEvent?: CoreEventListener;
}

/** Build a gateway from a validated config. */
export function createGateway(config: Config, deps: GatewayDeps): Gateway {
  const stores =
    deps.stores ?? createStoreRegistry(config.stores, { storeTimeoutMs: config.limits.store_timeout });
  const memory = createMemoryTier({ maxBytes: config.cache.max_memory, maxEntryBytes: config.cache.max_memory });
  const disk =
    config.cache.max_disk > 0 && config.cache.disk_path
      ? createDiskTier({
          dir: config.cache.disk_path,
          maxBytes: config.cache.max_disk,
          maxEntryBytes: config.cache.max_object_size,
          onError: (op, err) => deps.log.error({ op, err: (err as Error)?.message }, 'disk tier problem; serving on'),
        })
      : undefined;
  const service = createObjectService({
    stores,
    memory,
    disk,
    maxObjectBytes: config.cache.max_object_size,
    storeTimeoutMs: config.limits.store_timeout,
    storeIdleTimeoutMs: config.limits.store_idle_timeout,
    ...(deps.onCoreEvent ? { onEvent: deps.onCoreEvent } : {}),
  });
  const bearerTokens = [...(config.auth.bearer_token ? [config.auth.bearer_token] : []), ...config.auth.bearer_tokens];
  const keys = createKeyring(config.auth);
  const auth = {
    bearer: createBearerVerifier(bearerTokens),
    ...(keys.length > 0 ? { links: createLinkVerifier({ keys, clockSkewMs: config.auth.clock_skew }) } : {}),
  };
  const app = buildApp({ service, auth, log: deps.log, maxUploadBytes: config.limits.max_upload_size });

  let server: Server | undefined;
  let started: Promise<void> | undefined;
  const start = () => (started ??= disk?.start() ?? Promise.resolve());
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
        const s = serve({ fetch: app.fetch, hostname: host ?? '127.0.0.1', port: port ?? 0 }) as Server;
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
    async close() {
      if (server) {
        const s = server;
        server = undefined;
        await new Promise<void>((resolve) => {
          s.close(() => resolve());
          s.closeIdleConnections();
        });
      }
      await disk?.close();
      await stores.closeAll();
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
  const status = tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request';
  const body = JSON.stringify({ error: tooLarge ? 'request headers too large' : 'malformed HTTP request', code: 'GW_ERR_BAD_REQUEST' });
  socket.end(`HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}
