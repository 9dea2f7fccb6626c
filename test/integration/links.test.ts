/**
 * Signed links against a running gateway, with tokens made by an independent signer written
 * here on node:crypto (JSON built by hand), plus the shared vectors. Every refusal is checked
 * for its status and its one-line reason; secrets never reach the log.
 */
import { createPrivateKey, createPublicKey, sign as cryptoSign } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { createGateway, type Gateway } from '../../src/gateway.js';
import { startGateway, TEST_TOKEN, type TestGateway } from '../helpers/gateway.js';
import { captureLog } from '../helpers/log-capture.js';

interface Vectors {
  seed: string;
  publicKey: string;
  otherSeed: string;
  valid: { name: string; claims: { m: string; b: string; p: string; kid?: string }; token: string }[];
  invalid: { name: string; token: string; status: number; reason: string; request: { bucket: string; path: string; method: string } }[];
}

const VECTORS = JSON.parse(await readFile(path.resolve(import.meta.dirname, '../fixtures/link-vectors.json'), 'utf8')) as Vectors;

// ---- the independent signer: node:crypto only, nothing from src/sign ----

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SEED = VECTORS.seed;
const K1_SEED = Buffer.alloc(32, 0x11).toString('base64url');
const K2_SEED = Buffer.alloc(32, 0x22).toString('base64url');

const privateKeyOf = (seed: string) =>
  createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, Buffer.from(seed, 'base64url')]), format: 'der', type: 'pkcs8' });
const publicKeyOf = (seed: string) => createPublicKey(privateKeyOf(seed)).export({ format: 'jwk' }).x as string;

/** `<base64url payload>.<base64url signature>` over exactly these JSON bytes. */
function signJson(json: string, seed = SEED): string {
  const payload = Buffer.from(json, 'utf8');
  return `${payload.toString('base64url')}.${cryptoSign(null, payload, privateKeyOf(seed)).toString('base64url')}`;
}

const nowSec = () => Math.floor(Date.now() / 1000);
const FUTURE = () => nowSec() + 3600;

/** Claims as JSON, in cachegate's key order, for the usual case. */
function claims(c: { m?: string; b?: string; p: string; exp?: number; extra?: string }): string {
  return `{"v":1,"exp":${c.exp ?? FUTURE()},"m":"${c.m ?? 'GET'}","b":${JSON.stringify(c.b ?? 'media')},"p":${JSON.stringify(c.p)}${c.extra ?? ''}}`;
}

// ---- HTTP helpers ----

const encodePath = (key: string) => key.split('/').map(encodeURIComponent).join('/');

interface Reply {
  status: number;
  body: Buffer;
  error: string | undefined;
}

async function request(base: string, bucket: string, key: string, opts: { sig?: string; method?: string; headers?: Record<string, string>; rawPath?: string } = {}): Promise<Reply> {
  const target = opts.rawPath ?? `/${encodeURIComponent(bucket)}/${encodePath(key)}`;
  const query = opts.sig === undefined ? '' : `?sig=${encodeURIComponent(opts.sig)}`;
  const res = await fetch(`${base}${target}${query}`, { method: opts.method ?? 'GET', ...(opts.headers ? { headers: opts.headers } : {}) });
  const body = Buffer.from(await res.arrayBuffer());
  let error: string | undefined;
  if (res.status >= 400 && body.length > 0) {
    const text = body.toString('utf8');
    // A client gets a one-line JSON reason.
    expect(text).not.toContain('\n');
    error = (JSON.parse(text) as { error: string }).error;
    expect(typeof error).toBe('string');
  }
  return { status: res.status, body, error };
}

/** Expect a refusal with `status` and a reason containing `reason` (GET), or just the status (HEAD). */
async function expectRefused(p: Promise<Reply>, status: number, reason?: string | RegExp): Promise<void> {
  const r = await p;
  expect(r.status).toBe(status);
  if (reason !== undefined) {
    expect(r.error).toBeDefined();
    if (typeof reason === 'string') expect(r.error).toContain(reason);
    else expect(r.error).toMatch(reason);
  }
}

// ---- fixtures ----

const OBJECTS: Record<string, string> = {
  'a/b.txt': 'bytes of a/b.txt',
  'a.txt': 'bytes of a.txt',
  'head-only.txt': 'head only',
  'dir/café 日本.mp4': 'unicode bytes \u{1F600}',
  'a b+c.txt': 'space and plus',
};

let dir: string;
let root: string;
let main: TestGateway;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cg-links-'));
  root = path.join(dir, 'media');
  for (const [key, body] of Object.entries(OBJECTS)) {
    await mkdir(path.dirname(path.join(root, key)), { recursive: true });
    await writeFile(path.join(root, key), body);
  }
  main = await startGateway({
    auth: {
      public_key: VECTORS.publicKey,
      // The same key again under an id, so vectors carrying `kid: k1` verify too.
      keys: [{ id: 'k1', public_key: VECTORS.publicKey }],
      bearer_token: TEST_TOKEN,
      bearer_tokens: ['bearer-two-0123456789', 'bearer-three-0123456789'],
    },
    stores: { media: { type: 'fs', root }, other: { type: 'fs', root } },
  });
});

afterAll(async () => {
  await main?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('links from an independent signer', () => {
  it('GET is accepted and returns the object bytes', async () => {
    for (const [key, body] of Object.entries(OBJECTS)) {
      const r = await request(main.url, 'media', key, { sig: signJson(claims({ p: key })) });
      expect(r.status, key).toBe(200);
      expect(r.body.toString('utf8')).toBe(body);
    }
  });

  it('a GET link also allows HEAD', async () => {
    const r = await request(main.url, 'media', 'a/b.txt', { method: 'HEAD', sig: signJson(claims({ p: 'a/b.txt' })) });
    expect(r.status).toBe(200);
    expect(r.body).toHaveLength(0);
  });

  it('a HEAD link allows HEAD', async () => {
    const r = await request(main.url, 'media', 'a/b.txt', { method: 'HEAD', sig: signJson(claims({ m: 'HEAD', p: 'a/b.txt' })) });
    expect(r.status).toBe(200);
  });

  it('key order and whitespace in the JSON do not matter: the signature is over the bytes received', async () => {
    const exp = FUTURE();
    for (const json of [
      `{ "p": "a/b.txt", "b": "media", "m":"GET", "exp": ${exp}, "v": 1 }`,
      `{\n  "v": 1,\n  "exp": ${exp},\n  "m": "GET",\n  "b": "media",\n  "p": "a/b.txt"\n}`,
      `{"b":"media","v":1,"p":"a\\/b.txt","exp":${exp},"m":"GET"}`,
      `{"v":1,"exp":${exp},"m":"GET","b":"media","p":"a/b.txt","unknown_claim":{"x":[1,2]}}`,
    ]) {
      const r = await request(main.url, 'media', 'a/b.txt', { sig: signJson(json) });
      expect(r.status, json).toBe(200);
      expect(r.body.toString('utf8')).toBe(OBJECTS['a/b.txt']);
    }
  });

  it('the key in the link is the decoded path: %-encoded, unicode and + in the URL all match', async () => {
    const key = 'a b+c.txt';
    const sig = signJson(claims({ p: key }));
    for (const rawPath of ['/media/a%20b%2Bc.txt', '/media/a%20b+c.txt', '/%6Dedia/a%20b+c.txt']) {
      const r = await request(main.url, 'media', key, { sig, rawPath });
      expect(r.status, rawPath).toBe(200);
    }
    const u = await request(main.url, 'media', 'dir/café 日本.mp4', { sig: signJson(claims({ p: 'dir/café 日本.mp4' })) });
    expect(u.body.toString('utf8')).toBe(OBJECTS['dir/café 日本.mp4']);
  });

  it('nbf in the past is accepted', async () => {
    const r = await request(main.url, 'media', 'a/b.txt', { sig: signJson(claims({ p: 'a/b.txt', extra: `,"nbf":${nowSec() - 60}` })) });
    expect(r.status).toBe(200);
  });
});

describe('the shared vectors', () => {
  it.each(VECTORS.valid.map((v) => [v.name, v] as const))('%s is accepted by the gateway', async (_name, v) => {
    const { m, b, p } = v.claims;
    if (m === 'PUT') {
      // The object routes serve GET and HEAD; a PUT link's signature still verifies, so the
      // refusal is about scope (403), not the signature (401).
      await expectRefused(request(main.url, b, p, { sig: v.token }), 403, 'link allows PUT, not GET');
      return;
    }
    const r = await request(main.url, b, p, { method: m, sig: v.token });
    expect(r.status).toBe(200);
    if (m === 'GET') expect(r.body.toString('utf8')).toBe(OBJECTS[p]);
  });

  it.each(VECTORS.invalid.map((v) => [v.name, v] as const))('invalid %s is refused with its status and reason', async (_name, v) => {
    const { bucket, path: key, method } = v.request;
    await expectRefused(request(main.url, bucket, key, { method, sig: v.token }), v.status, v.reason);
  });
});

describe('refusals', () => {
  it('missing credentials: 401', async () => {
    await expectRefused(request(main.url, 'media', 'a/b.txt'), 401, 'missing credentials');
    await expectRefused(request(main.url, 'media', 'a/b.txt', { method: 'HEAD' }), 401);
  });

  it('malformed tokens: 401', async () => {
    const good = signJson(claims({ p: 'a/b.txt' }));
    const [payload, signature] = good.split('.') as [string, string];
    for (const sig of ['', 'garbage', 'not-a.token!', payload, `${payload}.`, `.${signature}`, `${payload}.${signature}.${signature}`, `${payload}..${signature}`, 'x'.repeat(5000)]) {
      await expectRefused(request(main.url, 'media', 'a/b.txt', { sig }), 401, 'malformed link');
    }
  });

  it('non-canonical base64url: padding, + and /, non-zero trailing bits: 401', async () => {
    // Find a token whose base64url has both '-' and '_' in it, so '+' and '/' can stand in.
    let good = '';
    for (let i = 0; !(good.includes('-') && good.includes('_')); i++) good = signJson(claims({ p: 'a/b.txt', exp: 4102444800 + i }));
    expect(await request(main.url, 'media', 'a/b.txt', { sig: good }).then((r) => r.status)).toBe(200);
    const [payload, signature] = good.split('.') as [string, string];
    const padded = (s: string) => s + '='.repeat((4 - (s.length % 4)) % 4);
    const lastChar = signature.at(-1)!;
    const bumped = lastChar === 'A' ? 'B' : lastChar === 'Q' ? 'R' : lastChar === 'g' ? 'h' : 'x';
    for (const sig of [
      `${padded(payload)}.${padded(signature)}`,
      `${payload}.${padded(signature)}`,
      good.replace('-', '+'),
      good.replace('_', '/'),
      `${payload}.${signature.slice(0, -1)}${bumped}`,
      `${payload}.${signature} `,
    ]) {
      await expectRefused(request(main.url, 'media', 'a/b.txt', { sig }), 401, 'malformed link');
    }
  });

  it('unknown version v:2: 401', async () => {
    const sig = signJson(`{"v":2,"exp":${FUTURE()},"m":"GET","b":"media","p":"a/b.txt"}`);
    await expectRefused(request(main.url, 'media', 'a/b.txt', { sig }), 401, 'unsupported link version');
    const noVersion = signJson(`{"exp":${FUTURE()},"m":"GET","b":"media","p":"a/b.txt"}`);
    await expectRefused(request(main.url, 'media', 'a/b.txt', { sig: noVersion }), 401, 'unsupported link version');
  });

  it('expired: 401', async () => {
    for (const exp of [nowSec() - 30, nowSec() - 3600, 0]) {
      await expectRefused(request(main.url, 'media', 'a/b.txt', { sig: signJson(claims({ p: 'a/b.txt', exp })) }), 401, 'expired');
    }
  });

  it('nbf in the future: 401', async () => {
    const sig = signJson(claims({ p: 'a/b.txt', extra: `,"nbf":${nowSec() + 600}` }));
    await expectRefused(request(main.url, 'media', 'a/b.txt', { sig }), 401, 'not yet valid');
  });

  it('signed by another key: 401 bad signature', async () => {
    const sig = signJson(claims({ p: 'a/b.txt' }), VECTORS.otherSeed);
    await expectRefused(request(main.url, 'media', 'a/b.txt', { sig }), 401, 'bad signature');
  });

  it('a changed payload with the old signature: 401 bad signature', async () => {
    const exp = FUTURE();
    const [, signature] = signJson(claims({ p: 'a/b.txt', exp })).split('.') as [string, string];
    const forged = Buffer.from(claims({ p: 'a.txt', exp })).toString('base64url');
    await expectRefused(request(main.url, 'media', 'a.txt', { sig: `${forged}.${signature}` }), 401, 'bad signature');
  });

  it('bucket mismatch: 403', async () => {
    await expectRefused(request(main.url, 'media', 'a/b.txt', { sig: signJson(claims({ b: 'other', p: 'a/b.txt' })) }), 403, 'another bucket');
    await expectRefused(request(main.url, 'other', 'a/b.txt', { sig: signJson(claims({ p: 'a/b.txt' })) }), 403, 'another bucket');
    await expectRefused(request(main.url, 'media', 'a/b.txt', { sig: signJson(claims({ b: 'MEDIA', p: 'a/b.txt' })) }), 403, 'another bucket');
  });

  it('path mismatch: 403, with no normalisation of slashes, case or Unicode', async () => {
    const cases: [signedPath: string, requested: string][] = [
      ['/a.txt', 'a.txt'],
      ['a.txt', 'A.txt'],
      ['A.txt', 'a.txt'],
      ['a/b.txt', 'a.txt'],
      ['a', 'a/b.txt'],
      ['a/b.txt/', 'a/b.txt'],
      ['dir/cafe\u0301 日本.mp4', 'dir/café 日本.mp4'],
      ['a%20b+c.txt', 'a b+c.txt'],
    ];
    for (const [signed, requested] of cases) {
      const r = await request(main.url, 'media', requested, { sig: signJson(claims({ p: signed })) });
      expect(r.status, `${signed} vs ${requested}`).toBe(403);
      expect(r.error).toContain('another path');
    }
  });

  it('method scope: GET allows HEAD; HEAD refuses GET; PUT and DELETE refuse GET (403)', async () => {
    const head = signJson(claims({ m: 'HEAD', p: 'a/b.txt' }));
    await expectRefused(request(main.url, 'media', 'a/b.txt', { sig: head }), 403, 'link allows HEAD, not GET');
    const put = signJson(claims({ m: 'PUT', p: 'a/b.txt', extra: ',"len":3' }));
    await expectRefused(request(main.url, 'media', 'a/b.txt', { sig: put }), 403, 'link allows PUT, not GET');
    await expectRefused(request(main.url, 'media', 'a/b.txt', { sig: put, method: 'HEAD' }), 403);
    const del = signJson(claims({ m: 'DELETE', p: 'a/b.txt' }));
    await expectRefused(request(main.url, 'media', 'a/b.txt', { sig: del }), 403, 'link allows DELETE, not GET');
    const bad = signJson(claims({ m: 'POST', p: 'a/b.txt' }));
    await expectRefused(request(main.url, 'media', 'a/b.txt', { sig: bad }), 401, "'m'");
  });
});

describe('clock skew', () => {
  let skewed: TestGateway;
  beforeAll(async () => {
    skewed = await startGateway({ auth: { public_key: VECTORS.publicKey, clock_skew: '60s' }, stores: { media: { type: 'fs', root } } });
  });
  afterAll(() => skewed?.close());

  it('auth.clock_skew 60s accepts a link expired 30 s ago, refuses one expired 120 s ago', async () => {
    const ok = await request(skewed.url, 'media', 'a/b.txt', { sig: signJson(claims({ p: 'a/b.txt', exp: nowSec() - 30 })) });
    expect(ok.status).toBe(200);
    await expectRefused(request(skewed.url, 'media', 'a/b.txt', { sig: signJson(claims({ p: 'a/b.txt', exp: nowSec() - 120 })) }), 401, 'expired');
  });

  it('and the same skew for nbf', async () => {
    const ok = await request(skewed.url, 'media', 'a/b.txt', { sig: signJson(claims({ p: 'a/b.txt', extra: `,"nbf":${nowSec() + 30}` })) });
    expect(ok.status).toBe(200);
    await expectRefused(request(skewed.url, 'media', 'a/b.txt', { sig: signJson(claims({ p: 'a/b.txt', extra: `,"nbf":${nowSec() + 120}` })) }), 401, 'not yet valid');
  });
});

describe('a gateway with only auth.keys (public keys, no bearer, no private key)', () => {
  let keysOnly: TestGateway;
  beforeAll(async () => {
    keysOnly = await startGateway({
      auth: { keys: [{ id: 'k1', public_key: publicKeyOf(K1_SEED) }, { id: 'k2', public_key: publicKeyOf(K2_SEED) }] },
      stores: { media: { type: 'fs', root } },
    });
  });
  afterAll(() => keysOnly?.close());

  it('accepts links signed by either key, with and without kid', async () => {
    for (const [seed, kid] of [[K1_SEED, undefined], [K2_SEED, undefined], [K1_SEED, 'k1'], [K2_SEED, 'k2']] as const) {
      const sig = signJson(claims({ p: 'a/b.txt', extra: kid ? `,"kid":"${kid}"` : '' }), seed);
      const r = await request(keysOnly.url, 'media', 'a/b.txt', { sig });
      expect(r.status, `${kid}`).toBe(200);
      expect(r.body.toString('utf8')).toBe(OBJECTS['a/b.txt']);
    }
  });

  it('kid naming an unknown key: 401', async () => {
    const sig = signJson(claims({ p: 'a/b.txt', extra: ',"kid":"k3"' }), K1_SEED);
    await expectRefused(request(keysOnly.url, 'media', 'a/b.txt', { sig }), 401, 'unknown key id');
  });

  it("kid 'k1' on a token signed by k2: 401", async () => {
    const sig = signJson(claims({ p: 'a/b.txt', extra: ',"kid":"k1"' }), K2_SEED);
    await expectRefused(request(keysOnly.url, 'media', 'a/b.txt', { sig }), 401, 'bad signature');
  });

  it('a key not in the ring: 401; and no bearer token is accepted', async () => {
    await expectRefused(request(keysOnly.url, 'media', 'a/b.txt', { sig: signJson(claims({ p: 'a/b.txt' })) }), 401, 'bad signature');
    await expectRefused(request(keysOnly.url, 'media', 'a/b.txt', { headers: { authorization: `Bearer ${TEST_TOKEN}` } }), 401, 'invalid bearer token');
  });
});

describe('bearer tokens', () => {
  it('bearer_token and every bearer_tokens entry are accepted, for GET and HEAD', async () => {
    for (const token of [TEST_TOKEN, 'bearer-two-0123456789', 'bearer-three-0123456789']) {
      const headers = { authorization: `Bearer ${token}` };
      const get = await request(main.url, 'media', 'a/b.txt', { headers });
      expect(get.status).toBe(200);
      expect(get.body.toString('utf8')).toBe(OBJECTS['a/b.txt']);
      expect((await request(main.url, 'media', 'a/b.txt', { headers, method: 'HEAD' })).status).toBe(200);
    }
  });

  it('a wrong token is refused (401), even with a valid link beside it', async () => {
    for (const token of ['wrong', `${TEST_TOKEN}x`, TEST_TOKEN.slice(0, -1)]) {
      await expectRefused(request(main.url, 'media', 'a/b.txt', { headers: { authorization: `Bearer ${token}` } }), 401, 'invalid bearer token');
    }
    const sig = signJson(claims({ p: 'a/b.txt' }));
    await expectRefused(request(main.url, 'media', 'a/b.txt', { sig, headers: { authorization: 'Bearer wrong' } }), 401, 'invalid bearer token');
    await expectRefused(request(main.url, 'media', 'a/b.txt', { headers: { authorization: `Basic ${TEST_TOKEN}` } }), 401, 'malformed Authorization');
  });
});

describe('logs', () => {
  const BEARER = 'log-secret-bearer-0123456789';
  let gw: Gateway;
  let url: string;
  const logs = captureLog('debug');

  beforeAll(async () => {
    const notADir = path.join(dir, 'regular-file');
    await writeFile(notADir, 'I am a file, not a directory');
    const raw = {
      listen: '127.0.0.1:0',
      auth: { public_key: VECTORS.publicKey, bearer_token: BEARER },
      stores: { media: { type: 'fs', root }, broken: { type: 'fs', root: notADir } },
    };
    gw = createGateway(validateConfig(raw), { log: logs.log });
    ({ url } = await gw.listen('127.0.0.1', 0));
  });
  afterAll(() => gw?.close());

  it('never contain a sig value or a bearer token, also when a store failure is logged', async () => {
    const sigs = {
      valid: signJson(claims({ p: 'a/b.txt' })),
      expired: signJson(claims({ p: 'a/b.txt', exp: nowSec() - 100 })),
      bad: signJson(claims({ p: 'a/b.txt' }), VECTORS.otherSeed),
      forbidden: signJson(claims({ p: 'a.txt' })),
      broken: signJson(claims({ b: 'broken', p: 'x.txt' })),
      brokenHead: signJson(claims({ b: 'broken', p: 'y.txt' })),
    };
    expect((await request(url, 'media', 'a/b.txt', { sig: sigs.valid })).status).toBe(200);
    expect((await request(url, 'media', 'a/b.txt', { sig: sigs.expired })).status).toBe(401);
    expect((await request(url, 'media', 'a/b.txt', { sig: sigs.bad })).status).toBe(401);
    expect((await request(url, 'media', 'a/b.txt', { sig: sigs.forbidden })).status).toBe(403);
    const failed = await request(url, 'broken', 'x.txt', { sig: sigs.broken });
    expect(failed.status).toBe(502);
    expect(failed.error).toContain("store 'broken'");
    expect((await request(url, 'broken', 'y.txt', { sig: sigs.brokenHead, method: 'HEAD' })).status).toBe(502);
    expect((await request(url, 'broken', 'z.txt', { headers: { authorization: `Bearer ${BEARER}` } })).status).toBe(502);
    expect((await request(url, 'media', 'a/b.txt', { headers: { authorization: 'Bearer wrong-secret-0123456789' } })).status).toBe(401);
    await new Promise((resolve) => setImmediate(resolve));

    // The store failure was logged, so the capture works.
    expect(logs.text()).toContain('GW_ERR_STORE');
    expect(logs.text()).toContain("store 'broken' failed");
    for (const [name, sig] of Object.entries(sigs)) {
      expect(logs.text(), name).not.toContain(sig);
      // Neither half of it either.
      for (const part of sig.split('.')) expect(logs.text(), `${name} part`).not.toContain(part);
    }
    expect(logs.text()).not.toContain(BEARER);
    expect(logs.text()).not.toContain('wrong-secret-0123456789');
  });
});
