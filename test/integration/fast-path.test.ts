/**
 * The hit fast path (http/fast-path.ts) answers plain memory hits before Hono. It must answer
 * exactly as the full route does: same status, headers and bytes, for bearer and signed requests;
 * anything it does not handle must reach the full route unchanged.
 */
import { createPrivateKey, randomBytes, sign as edSign } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFsStore } from '../../src/stores/fs.js';
import { countingStore, type CountingStore, gets } from '../helpers/counting-store.js';
import { AUTH, TEST_TOKEN, startGateway, type TestGateway } from '../helpers/gateway.js';

const SEED = Buffer.alloc(32, 3);
const PRIVATE_KEY = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), SEED]), format: 'der', type: 'pkcs8' });
const PUBLIC_KEY = (PRIVATE_KEY.export({ format: 'jwk' }) as { x: string }).x;

function link(claims: Record<string, unknown>): string {
  const payload = Buffer.from(JSON.stringify({ v: 1, exp: Math.floor(Date.now() / 1000) + 600, ...claims }));
  return `${payload.toString('base64url')}.${edSign(null, payload, PRIVATE_KEY).toString('base64url')}`;
}

/** Headers that legitimately differ between two responses. */
const VOLATILE = new Set(['date', 'x-request-id', 'keep-alive', 'connection']);
function stable(res: Response): Record<string, string> {
  const out: Record<string, string> = {};
  res.headers.forEach((value, name) => {
    if (!VOLATILE.has(name)) out[name] = value;
  });
  return out;
}

describe('hit fast path', () => {
  let dir: string;
  let store: CountingStore;
  let gw: TestGateway;
  const body = randomBytes(70_000);

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-fast-'));
    await writeFile(path.join(dir, 'clip.bin'), body);
    store = countingStore(createFsStore('media', { root: dir }));
    gw = await startGateway({ auth: { bearer_token: TEST_TOKEN, public_key: PUBLIC_KEY } }, [store]);
    await (await fetch(`${gw.url}/media/clip.bin`, { headers: AUTH })).arrayBuffer(); // now cached
  });
  afterAll(async () => {
    await gw?.close();
    await rm(dir, { recursive: true, force: true });
  });

  // A non-matching If-None-Match sends the same request through the full (Hono) route.
  const FULL_ROUTE = { 'if-none-match': '"no-such-etag"' };

  /** How many requests the fast path answered: only it calls service.memoryHit. */
  function countFastHits(): { n: number } {
    const count = { n: 0 };
    const service = gw.gateway.service;
    const real = service.memoryHit.bind(service);
    service.memoryHit = (bucket, key) => {
      const entry = real(bucket, key);
      if (entry) count.n++;
      return entry;
    };
    return count;
  }

  it('answers a bearer hit exactly as the full route does', async () => {
    const fastHits = countFastHits();
    for (const method of ['GET', 'HEAD']) {
      const before = fastHits.n;
      const fast = await fetch(`${gw.url}/media/clip.bin`, { method, headers: AUTH });
      expect(fastHits.n).toBe(before + 1);
      const full = await fetch(`${gw.url}/media/clip.bin`, { method, headers: { ...AUTH, ...FULL_ROUTE } });
      expect(fastHits.n).toBe(before + 1);
      expect(fast.status).toBe(200);
      expect(full.status).toBe(200);
      expect(stable(fast)).toEqual(stable(full));
      expect(fast.headers.get('x-cg-status')).toBe('hit=1');
      const [a, b] = [Buffer.from(await fast.arrayBuffer()), Buffer.from(await full.arrayBuffer())];
      expect(a.equals(b)).toBe(true);
      if (method === 'GET') expect(a.equals(body)).toBe(true);
    }
    expect(gets(store.calls)).toBe(1);
  });

  it('answers a signed-link hit exactly as the full route does', async () => {
    const url = `${gw.url}/media/clip.bin?sig=${link({ m: 'GET', b: 'media', p: 'clip.bin' })}`;
    const fastHits = countFastHits();
    const fast = await fetch(url);
    expect(fastHits.n).toBe(1);
    const full = await fetch(url, { headers: FULL_ROUTE });
    expect(fastHits.n).toBe(1);
    expect(fast.status).toBe(200);
    expect(fast.headers.get('cache-control')).toMatch(/^private, max-age=\d+$/);
    // A link's max-age counts down each second: the two answers may straddle one.
    const [a, b] = [stable(fast), stable(full)];
    expect(Math.abs(Number(/max-age=(\d+)/.exec(a['cache-control']!)?.[1]) - Number(/max-age=(\d+)/.exec(b['cache-control']!)?.[1]))).toBeLessThanOrEqual(1);
    delete a['cache-control'];
    delete b['cache-control'];
    expect(a).toEqual(b);
    expect(Buffer.from(await fast.arrayBuffer()).equals(body)).toBe(true);
  });

  it('leaves every refusal to the full route (same status and one-line reason)', async () => {
    const cases: [string, Record<string, string>, number][] = [
      [`${gw.url}/media/clip.bin`, {}, 401],
      [`${gw.url}/media/clip.bin`, { authorization: 'Bearer wrong' }, 401],
      [`${gw.url}/media/clip.bin?sig=${link({ m: 'GET', b: 'media', p: 'other.bin' })}`, {}, 403],
      [`${gw.url}/media/clip.bin?sig=${link({ m: 'GET', b: 'media', p: 'clip.bin', exp: 1 })}`, {}, 401],
      [`${gw.url}/nope/clip.bin`, AUTH, 404],
    ];
    for (const [url, headers, status] of cases) {
      const res = await fetch(url, { headers });
      expect(res.status, url).toBe(status);
      expect(((await res.json()) as { error: string }).error).not.toContain('\n');
    }
  });

  it('counts fast-path hits in /stats and /metrics like any other', async () => {
    const before = (await (await fetch(`${gw.url}/stats`)).json()) as { cache_hit_total: number; requests_total: number };
    for (let i = 0; i < 5; i++) await (await fetch(`${gw.url}/media/clip.bin`, { headers: AUTH })).arrayBuffer();
    const after = (await (await fetch(`${gw.url}/stats`)).json()) as { cache_hit_total: number; requests_total: number };
    expect(after.cache_hit_total - before.cache_hit_total).toBe(5);
    expect(after.requests_total - before.requests_total).toBeGreaterThanOrEqual(5);
  });

  it("serves a link's rcd/rct overrides from the fast path, exactly as the route does", async () => {
    const url = `${gw.url}/media/clip.bin?sig=${link({ m: 'GET', b: 'media', p: 'clip.bin', rcd: 'attachment; filename="a b.bin"', rct: 'video/mp4' })}`;
    const fastHits = countFastHits();
    const fast = await fetch(url);
    expect(fastHits.n).toBe(1);
    const full = await fetch(url, { headers: FULL_ROUTE });
    expect(fastHits.n).toBe(1);
    expect(fast.headers.get('content-type')).toBe('video/mp4');
    expect(fast.headers.get('content-disposition')).toContain('attachment');
    // A link's max-age counts down each second: the two answers may straddle one.
    const [a, b] = [stable(fast), stable(full)];
    expect(Math.abs(Number(/max-age=(\d+)/.exec(a['cache-control']!)?.[1]) - Number(/max-age=(\d+)/.exec(b['cache-control']!)?.[1]))).toBeLessThanOrEqual(1);
    delete a['cache-control'];
    delete b['cache-control'];
    expect(a).toEqual(b);
    // An invalid rct is refused by the route, before any store call.
    const gets = store.calls.get;
    const bad = await fetch(`${gw.url}/media/clip.bin?sig=${link({ m: 'GET', b: 'media', p: 'clip.bin', rct: 'not a type' })}`);
    expect(bad.status).toBe(400);
    expect(store.calls.get).toBe(gets);
  });
});

describe('hit fast path on a store with CORS', () => {
  let dir: string;
  let gw: TestGateway;
  const body = randomBytes(5000);

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-fast-cors-'));
    await writeFile(path.join(dir, 'clip.bin'), body);
    gw = await startGateway(
      {
        auth: { bearer_token: TEST_TOKEN, public_key: PUBLIC_KEY },
        stores: { media: { type: 'fs', root: dir, cors: { allowed_origins: ['https://app.example'] } } },
      },
    );
    await (await fetch(`${gw.url}/media/clip.bin`, { headers: AUTH })).arrayBuffer(); // now cached
  });
  afterAll(async () => {
    await gw?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers with the same CORS headers as the route, with and without an allowed Origin', async () => {
    const service = gw.gateway.service;
    let fastHits = 0;
    const real = service.memoryHit.bind(service);
    service.memoryHit = (bucket, key) => {
      const entry = real(bucket, key);
      if (entry) fastHits++;
      return entry;
    };
    for (const origin of [undefined, 'https://app.example', 'https://evil.example']) {
      const extra: Record<string, string> = origin ? { origin } : {};
      const before = fastHits;
      const fast = await fetch(`${gw.url}/media/clip.bin`, { headers: { ...AUTH, ...extra } });
      expect(fastHits, String(origin)).toBe(before + 1);
      const full = await fetch(`${gw.url}/media/clip.bin`, { headers: { ...AUTH, ...extra, 'if-none-match': '"x"' } });
      expect(stable(fast), String(origin)).toEqual(stable(full));
      expect(fast.headers.get('vary')).toBe('Origin');
      expect(fast.headers.get('access-control-allow-origin')).toBe(origin === 'https://app.example' ? origin : null);
      expect(Buffer.from(await fast.arrayBuffer()).equals(body)).toBe(true);
    }
  });
});
