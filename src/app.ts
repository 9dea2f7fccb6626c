/**
 * `buildApp(deps)`: the Hono app, with no I/O at import. `main.ts` builds the dependencies and
 * passes them in, which keeps tests simple.
 */
import { Hono } from 'hono';
import { createAuthMiddleware, type AuthOptions } from './auth/middleware.js';
import type { ObjectService } from './core/object-service.js';
import { createAccessLog, type RequestRecord } from './http/access-log.js';
import { errorResponse, type ServerErrorListener } from './http/error-response.js';
import { mountAdminRoutes, type AdminDeps } from './http/routes/admin.js';
import {
  corsMiddleware,
  createObjectHandler,
  objectMethodsMiddleware,
  parseObjectPathMiddleware,
  type ObjectEnv,
  type StoreHttpOptions,
} from './http/routes/objects.js';
import type { Logger } from './metrics/log.js';

export interface AppDeps {
  service: ObjectService;
  auth: AuthOptions;
  log: Logger;
  /** `limits.max_upload_size`. */
  maxUploadBytes: number;
  admin: AdminDeps;
  /** CORS and Cache-Control per bucket id. */
  storeOptions: ReadonlyMap<string, StoreHttpOptions>;
  /** Write one access line per request. */
  accessLog: boolean;
  onRequest?: (r: RequestRecord) => void;
  /** Server-side failures (5xx), e.g. for Sentry. */
  onServerError?: ServerErrorListener;
}

/** Build the gateway's HTTP app. */
export function buildApp(deps: AppDeps): Hono<ObjectEnv> {
  const app = new Hono<ObjectEnv>();
  app.use('*', createAccessLog({ log: deps.log, enabled: deps.accessLog, ...(deps.onRequest ? { onRequest: deps.onRequest } : {}) }));
  mountAdminRoutes(app, deps.admin);
  app.all(
    '*',
    objectMethodsMiddleware(),
    parseObjectPathMiddleware(),
    corsMiddleware(deps.storeOptions),
    createAuthMiddleware(deps.auth),
    createObjectHandler({ service: deps.service, log: deps.log, maxUploadBytes: deps.maxUploadBytes, storeOptions: deps.storeOptions }),
  );
  app.onError((err, c) => errorResponse(c, err, deps.log, deps.onServerError));
  return app;
}

export type { AppDeps as BuildAppDeps };
export { createGateway, type Gateway } from './gateway.js';
