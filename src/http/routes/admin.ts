/**
 * Operational routes. `/health` is liveness: the process is up and serving HTTP.
 */
import type { Hono } from 'hono';
import type { Env } from 'hono';

/** Mount the operational routes on the app. */
export function mountAdminRoutes<E extends Env>(app: Hono<E>): void {
  app.get('/health', (c) => c.text('OK'));
}
