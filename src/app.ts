/**
 * `buildApp(deps)`: the Hono app, with no I/O at import. `main.ts` builds the dependencies and
 * passes them in, which keeps tests simple.
 */
import { Hono } from 'hono';
import { createAuthMiddleware, type AuthOptions } from './auth/middleware.js';
import type { ObjectService } from './core/object-service.js';
import { createAccessLog, type RequestRecorder } from './http/access-log.js';
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
import { createResponseHeaders, type ResponseHeaderBuilder } from './http/response-headers.js';

export interface AppDeps {
  service: ObjectService;
  auth: AuthOptions;
  log: Logger;
  /** `limits.max_upload_size`. */
  maxUploadBytes: number;
  admin: AdminDeps;
  /** CORS and Cache-Control per bucket id. */
  storeOptions: ReadonlyMap<string, StoreHttpOptions>;
  /** The header builder, shared with the hit fast path (default: one for `storeOptions`). */
  headers?: ResponseHeaderBuilder;
  /** Counts every request and writes its access line. */
  recorder: RequestRecorder;
  /** Server-side failures (5xx), e.g. for Sentry. */
  onServerError?: ServerErrorListener;
}

/** Build the gateway's HTTP app. */
export function buildApp(deps: AppDeps): Hono<ObjectEnv> {
  const app = new Hono<ObjectEnv>();
  app.use('*', createAccessLog(deps.recorder));
  mountAdminRoutes(app, deps.admin);
  app.all(
    '*',
    objectMethodsMiddleware(),
    parseObjectPathMiddleware(),
    corsMiddleware(deps.storeOptions),
    createAuthMiddleware(deps.auth),
    createObjectHandler({
      service: deps.service,
      log: deps.log,
      maxUploadBytes: deps.maxUploadBytes,
      storeOptions: deps.storeOptions,
      headers: deps.headers ?? createResponseHeaders(deps.storeOptions),
    }),
  );
  app.onError((err, c) => errorResponse(c, err, deps.log, deps.onServerError));
  return app;
}

export type { AppDeps as BuildAppDeps };
export { createGateway, type Gateway } from './gateway.js';
