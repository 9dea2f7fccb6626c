/**
 * Operational routes: `/health` (liveness), `/ready` (every store answered its last probe, and
 * not draining), `/stats` (cachegate's JSON) and `/metrics` (Prometheus), without auth; and
 * `POST /admin/purge`, which needs `Authorization: Bearer <auth.admin_token>`.
 */
import type { Env, Hono } from 'hono';
import { bearerFromHeader, type BearerVerifier } from '../../auth/bearer.js';
import { GatewayError } from '../../errors.js';
import { validateKey } from '../object-path.js';

export interface AdminDeps {
  ready: () => { ready: boolean; stores: Record<string, boolean> };
  stats: () => object;
  metrics: () => Promise<{ contentType: string; text: string }>;
  purge?: {
    /** The admin token (none configured: nothing matches). */
    admin: BearerVerifier;
    /** The ordinary bearer tokens: valid credentials, but not for this (403). */
    bearer: BearerVerifier;
    run(bucket: string, target: { key: string } | { prefix: string }): Promise<number>;
  };
}

/** Longest purge request body, in bytes. */
const MAX_PURGE_BODY_BYTES = 4096;

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
  const purge = deps.purge;
  if (purge) {
    // Drops cached copies by key or prefix; the store is not touched.
    app.post('/admin/purge', async (c) => {
      const token = bearerFromHeader(c.req.header('authorization'));
      if (token === undefined) throw new GatewayError('GW_ERR_UNAUTHORIZED', 'missing credentials: send Authorization: Bearer <admin token>');
      if (!purge.admin(token)) {
        if (purge.bearer(token)) throw new GatewayError('GW_ERR_FORBIDDEN', 'purge needs the admin token, not a bearer token');
        throw new GatewayError('GW_ERR_UNAUTHORIZED', 'invalid admin token');
      }
      const { bucket, target } = parsePurge(await c.req.text());
      const purged = await purge.run(bucket, target);
      return c.json({ purged }, 200, { 'cache-control': 'no-store' });
    });
  }
}

function parsePurge(text: string): { bucket: string; target: { key: string } | { prefix: string } } {
  const bad = (why: string) => new GatewayError('GW_ERR_BAD_REQUEST', `invalid purge: ${why}`);
  if (Buffer.byteLength(text) > MAX_PURGE_BODY_BYTES) throw bad(`body over ${MAX_PURGE_BODY_BYTES} bytes`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw bad('body is not JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('expected {"bucket", "key"} or {"bucket", "prefix"}');
  const { bucket, key, prefix } = body as Record<string, unknown>;
  if (typeof bucket !== 'string' || bucket === '') throw bad('bucket is required');
  if ((key === undefined) === (prefix === undefined)) throw bad('give exactly one of key and prefix');
  if (key !== undefined) {
    if (typeof key !== 'string') throw bad('key must be a string');
    validateKey(key);
    return { bucket, target: { key } };
  }
  if (typeof prefix !== 'string' || prefix === '') throw bad('prefix must be a non-empty string');
  return { bucket, target: { prefix } };
}
