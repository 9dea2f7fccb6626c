/**
 * The fast path (http/fast-path.ts) answers plain memory hits, and plain GETs that miss, before
 * Hono. It must answer exactly as the full route does: same status, headers and bytes, for bearer
 * and signed requests, errors included; anything it does not handle must reach the full route
 * unchanged.
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

/** Two answers to one signed link carry the same headers; its max-age counts down each second, so the two may straddle one. */
function expectSameLinkHeaders(fast: Response, full: Response): void {
  const [a, b] = [stable(fast), stable(full)];
  const maxAge = (h: Record<string, string>) => Number(/max-age=(\d+)/.exec(h['cache-control']!)?.[1]);
  expect(Math.abs(maxAge(a) - maxAge(b))).toBeLessThanOrEqual(1);
  delete a['cache-control'];
  delete b['cache-control'];
  expect(a).toEqual(b);
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
    expectSameLinkHeaders(fast, full);
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
    expectSameLinkHeaders(fast, full);
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

/**
 * Plain GETs the memory tier does not hold are read and answered by the fast path too (Hono's
 * route costs about a fifth of a cold miss). Each answer must be the route's: the same status,
 * headers and bytes, for a small miss (one buffer), a streamed one, a signed link, a 404, a store
 * that fails, and a store with CORS. Each object is purged between the two reads, so both miss.
 */
describe('misses on the fast path', () => {
  let dir: string;
  let store: CountingStore;
  let gw: TestGateway;
  const small = randomBytes(3000);
  const large = randomBytes(3 * 2 ** 20 + 17);

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-fast-miss-'));
    await writeFile(path.join(dir, 'small.bin'), small);
    await writeFile(path.join(dir, 'large.bin'), large);
    store = countingStore(createFsStore('media', { root: dir }));
    gw = await startGateway(
      {
        auth: { bearer_token: TEST_TOKEN, public_key: PUBLIC_KEY },
        stores: { media: { type: 'fs', root: dir, cors: { allowed_origins: ['https://app.example'] } } },
      },
      [store],
    );
  });
  afterAll(async () => {
    await gw?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Which path read: the fast path calls service.read without options, the route with its range picker. */
  function countReads(): { fast: number; route: number } {
    const count = { fast: 0, route: 0 };
    const service = gw.gateway.service;
    const real = service.read.bind(service);
    service.read = (bucket, key, opts, retried) => {
      if (opts === undefined) count.fast++;
      else if (!retried) count.route++;
      return real(bucket, key, opts, retried);
    };
    return count;
  }

  /** The same GET through the fast path and through the route, each a miss. */
  async function both(key: string, url: string, headers: Record<string, string>): Promise<[Response, Response]> {
    await gw.gateway.service.purge('media', { key });
    const fast = await fetch(url, { headers });
    const fastBody = Buffer.from(await fast.arrayBuffer());
    await gw.gateway.service.purge('media', { key });
    const full = await fetch(url, { headers: { ...headers, ...FULL_ROUTE_HEADER } });
    const fullBody = Buffer.from(await full.arrayBuffer());
    expect(fastBody.equals(fullBody), url).toBe(true);
    return [new Response(fastBody, fast), new Response(fullBody, full)];
  }
  const FULL_ROUTE_HEADER = { 'if-none-match': '"no-such-etag"' };

  it('answers small and streamed misses, bearer and signed, with and without an allowed Origin, exactly as the route does', async () => {
    const reads = countReads();
    for (const [key, bytes] of [['small.bin', small], ['large.bin', large]] as const) {
      for (const origin of [undefined, 'https://app.example', 'https://evil.example']) {
        const extra: Record<string, string> = origin ? { origin } : {};
        const before = { ...reads };
        const [fast, full] = await both(key, `${gw.url}/media/${key}`, { ...AUTH, ...extra });
        expect(reads.fast - before.fast, `${key} ${origin}`).toBe(1);
        expect(reads.route - before.route, `${key} ${origin}`).toBe(1);
        expect(fast.status).toBe(200);
        expect(fast.headers.get('x-cg-status')).toBe('hit=0');
        expect(stable(fast), `${key} ${origin}`).toEqual(stable(full));
        expect(Buffer.from(await fast.arrayBuffer()).equals(bytes)).toBe(true);
      }
    }
    const url = `${gw.url}/media/small.bin?sig=${link({ m: 'GET', b: 'media', p: 'small.bin', rcd: 'inline', rct: 'video/mp4' })}`;
    const before = reads.fast;
    const [fast, full] = await both('small.bin', url, {});
    expect(reads.fast - before).toBe(1);
    expect(fast.headers.get('content-type')).toBe('video/mp4');
    expectSameLinkHeaders(fast, full);
  });

  it('answers a missing object and a failing store with the route\'s one-line JSON error, CORS headers included', async () => {
    const reads = countReads();
    const origin = { origin: 'https://app.example' };
    const [fast404, full404] = await both('absent.bin', `${gw.url}/media/absent.bin`, { ...AUTH, ...origin });
    expect(reads.fast).toBe(1);
    expect(fast404.status).toBe(404);
    expect(stable(fast404)).toEqual(stable(full404));
    expect(await fast404.json()).toEqual(await full404.json());
    expect(fast404.headers.get('access-control-allow-origin')).toBe('https://app.example');

    store.tap = async () => {
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    };
    try {
      const [fast, full] = await both('small.bin', `${gw.url}/media/small.bin`, { ...AUTH, ...origin });
      expect(reads.fast).toBe(2);
      expect(fast.status).toBeGreaterThanOrEqual(500);
      expect(fast.status).toBe(full.status);
      const [a, b] = [stable(fast), stable(full)];
      // A store being left alone says when to ask again; the two answers may straddle a second.
      delete a['retry-after'];
      delete b['retry-after'];
      expect(a).toEqual(b);
      const [ja, jb] = [(await fast.json()) as { error: string; code: string }, (await full.json()) as { error: string; code: string }];
      expect(ja.code).toBe(jb.code);
      expect(ja.error).not.toContain('\n');
    } finally {
      store.tap = undefined;
    }
  });

  it('leaves a HEAD miss, and a link with an invalid override, to the route (no store call for the latter)', async () => {
    const reads = countReads();
    await gw.gateway.service.purge('media', { key: 'small.bin' });
    const head = await fetch(`${gw.url}/media/small.bin`, { method: 'HEAD', headers: AUTH });
    expect(head.status).toBe(200);
    const gets = store.calls.get;
    const bad = await fetch(`${gw.url}/media/small.bin?sig=${link({ m: 'GET', b: 'media', p: 'small.bin', rct: 'not a type' })}`);
    expect(bad.status).toBe(400);
    expect(store.calls.get).toBe(gets);
    expect(reads.fast).toBe(0);
  });
});
