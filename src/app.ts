/**
 * `buildApp(deps)`: the Hono app, with no I/O at import. `main.ts` builds the dependencies and
 * passes them in, which keeps tests simple.
 */
import { Hono } from 'hono';
import { createAuthMiddleware, type AuthOptions } from './auth/middleware.js';
import type { ObjectService } from './core/object-service.js';
import { errorResponse } from './http/error-response.js';
import { mountAdminRoutes } from './http/routes/admin.js';
import {
  createObjectHandler,
  objectMethodsMiddleware,
  parseObjectPathMiddleware,
  type ObjectEnv,
} from './http/routes/objects.js';
import type { Logger } from './metrics/log.js';

export interface AppDeps {
  service: ObjectService;
  auth: AuthOptions;
  log: Logger;
  /** `limits.max_upload_size`. */
  maxUploadBytes: number;
}

/** Build the gateway's HTTP app. */
export function buildApp(deps: AppDeps): Hono<ObjectEnv> {
  const app = new Hono<ObjectEnv>();
  mountAdminRoutes(app);
  app.all(
    '*',
    objectMethodsMiddleware(),
    parseObjectPathMiddleware(),
    createAuthMiddleware(deps.auth),
    createObjectHandler({ service: deps.service, log: deps.log, maxUploadBytes: deps.maxUploadBytes }),
  );
  app.onError((err, c) => errorResponse(c, err, deps.log));
  return app;
}

export type { AppDeps as BuildAppDeps };
export { createGateway, type Gateway } from './gateway.js';
