/**
 * Operational routes, without auth: `/health` (liveness), `/ready` (every store answered its
 * last probe, and not draining), `/stats` (cachegate's JSON) and `/metrics` (Prometheus).
 */
import type { Env, Hono } from 'hono';

export interface AdminDeps {
  ready: () => { ready: boolean; stores: Record<string, boolean> };
  stats: () => object;
  metrics: () => Promise<{ contentType: string; text: string }>;
}

/** Mount the operational routes on the app. */
export function mountAdminRoutes<E extends Env>(app: Hono<E>, deps: AdminDeps): void {
  app.get('/health', (c) => c.text('OK'));
  app.get('/ready', (c) => {
    const r = deps.ready();
    return c.json({ ready: r.ready, stores: r.stores }, r.ready ? 200 : 503, { 'cache-control': 'no-store' });
  });
  app.get('/stats', (c) => c.json(deps.stats(), 200, { 'cache-control': 'no-store' }));
  app.get('/metrics', async (c) => {
    const m = await deps.metrics();
    return c.body(m.text, 200, { 'content-type': m.contentType, 'cache-control': 'no-store' });
  });
}
