/**
 * Hardening (issue 11) through running gateways on real sockets: what an attacker holding an
 * ordinary token or link could do to crash the gateway, lose data, or get two answers for one
 * request. Each test here failed before its fix.
 */
import { createPrivateKey, randomBytes, sign as edSign } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFsStore } from '../../src/stores/fs.js';
import type { ObjectStore, PutOptions } from '../../src/stores/types.js';
import { countingStore, type CountingStore } from '../helpers/counting-store.js';
import { AUTH, TEST_TOKEN, startGateway, type TestGateway } from '../helpers/gateway.js';
import { leave, parseResponses, rawExchange, until } from '../helpers/raw-http.js';
import { readAll } from '../helpers/store-bytes.js';
import { BACKENDS } from '../helpers/backends.js';
import { eventually } from '../helpers/eventually.js';
import { captureLog } from '../helpers/log-capture.js';

const SEED = Buffer.alloc(32, 21);
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const PRIVATE_KEY = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, SEED]), format: 'der', type: 'pkcs8' });
const PUBLIC_KEY = (PRIVATE_KEY.export({ format: 'jwk' }) as { x: string }).x;

/** An independent signer over the exact payload text given (so it can hold duplicate names). */
function linkFromText(payloadText: string): string {
  const payload = Buffer.from(payloadText);
  return `${payload.toString('base64url')}.${edSign(null, payload, PRIVATE_KEY).toString('base64url')}`;
}
const exp = () => Math.floor(Date.now() / 1000) + 600;
const link = (claims: Record<string, unknown>) => linkFromText(JSON.stringify({ v: 1, exp: exp(), ...claims }));


async function stats(gw: TestGateway): Promise<{ requests_total: number; upstream_err_total: number }> {
  return (await (await fetch(`${gw.url}/stats`)).json()) as { requests_total: number; upstream_err_total: number };
}

/** The one-line JSON error every refusal carries. */
function expectJsonError(body: Buffer, code?: string): void {
  const text = body.toString('utf8');
  expect(text).not.toContain('\n');
  const parsed = JSON.parse(text) as { error: string; code: string };
  expect(typeof parsed.error).toBe('string');
  if (code) expect(parsed.code).toBe(code);
}

function hostOf(url: string): string {
  return new URL(url).host;
}


describe('request hardening on a directory store', () => {
  let dir: string;
  let outside: string;
  let store: CountingStore;
  let gw: TestGateway;
  let putDelayMs = 0;
  const captured = captureLog();
  const url = (key: string) => `${gw.url}/media/${key}`;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-hard-'));
    outside = await mkdtemp(path.join(tmpdir(), 'cg-outside-'));
    const inner = createFsStore('media', { root: dir });
    // A store whose acknowledgement of a PUT can be held back, so a client can leave meanwhile.
    const slowPut: ObjectStore = {
      ...inner,
      id: inner.id,
      type: inner.type,
      head: (k, o) => inner.head(k, o),
      get: (k, o) => inner.get(k, o),
      revalidate: (k, e, o) => inner.revalidate(k, e, o),
      delete: (k, o) => inner.delete(k, o),
      close: () => inner.close(),
      async put(k, body, o?: PutOptions) {
        const r = await inner.put(k, body, o);
        if (putDelayMs) await new Promise((res) => setTimeout(res, putDelayMs));
        return r;
      },
    };
    store = countingStore(slowPut);
    gw = await startGateway(
      { auth: { bearer_token: TEST_TOKEN, public_key: PUBLIC_KEY }, cache: { max_memory: '16MiB' } },
      [store],
      { log: captured.log },
    );
  });
  afterAll(async () => {
    await gw?.close();
    await rm(dir, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  it('answers a PUT without Content-Length or chunked coding 411 and leaves the old object untouched', async () => {
    await writeFile(path.join(dir, 'keep.txt'), 'precious bytes');
    const before = store.calls.put;
    // As `curl -H 'Content-Length:'` sends it: headers without a length, then the body anyway.
    const raw = await rawExchange(gw.url, [
      `PUT /media/keep.txt HTTP/1.1\r\nHost: ${hostOf(gw.url)}\r\nAuthorization: Bearer ${TEST_TOKEN}\r\n\r\n`,
      'new bytes that are no request line\r\n\r\n',
    ]);
    const [res, ...rest] = parseResponses(raw);
    expect(res!.status).toBe(411);
    expectJsonError(res!.body, 'GW_ERR_LENGTH_REQUIRED');
    expect(res!.headers.connection).toBe('close');
    expect(rest).toHaveLength(0); // the stray body is never parsed as a next request
    expect(store.calls.put).toBe(before);
    expect((await readFile(path.join(dir, 'keep.txt'))).toString()).toBe('precious bytes');

    // HTTP/1.0 without a length: the same.
    const old = parseResponses(
      await rawExchange(gw.url, [`PUT /media/keep.txt HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKEN}\r\n\r\nnew bytes`]),
    );
    expect(old[0]!.status).toBe(411);
    expect((await readFile(path.join(dir, 'keep.txt'))).toString()).toBe('precious bytes');

    // An explicit Content-Length: 0 is still a valid empty PUT.
    const [empty] = parseResponses(
      await rawExchange(gw.url, [`PUT /media/empty.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKEN}\r\nContent-Length: 0\r\n\r\n`]),
    );
    expect(empty!.status).toBe(200);
    expect((await readFile(path.join(dir, 'empty.txt'))).length).toBe(0);
  });

  it('logs and counts a GET whose client leaves before the answer, and a PUT that was written', async () => {
    const key = 'leaving/miss.bin';
    await mkdir(path.join(dir, 'leaving'), { recursive: true });
    await writeFile(path.join(dir, key), randomBytes(4096));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    store.tap = async (_k, _o, real) => {
      await gate;
      return real();
    };
    const before = (await stats(gw)).requests_total;
    const linesBefore = captured.lines().length;
    await rawExchange(gw.url, [
      `GET /media/${key} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKEN}\r\n\r\n`,
      () => new Promise((r) => setTimeout(r, 50)),
      leave,
    ]);
    // The client is gone; now the store answers.
    await new Promise((r) => setTimeout(r, 100));
    release();
    store.tap = undefined;
    const line = () => captured.lines().slice(linesBefore).find((l) => l.msg === 'request' && l.key === key);
    expect(await eventually(() => line() !== undefined)).toBe(true);
    expect(line()!.completed).toBe(false);
    expect(line()!.method).toBe('GET');

    // A PUT whose client sends everything, then leaves before the store acknowledged it.
    putDelayMs = 300;
    try {
      const body = 'written while the client left';
      await rawExchange(
        gw.url,
        [
          `PUT /media/leaving/put.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKEN}\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
          () => new Promise((r) => setTimeout(r, 100)),
          leave,
        ],
      );
      const putLine = () => captured.lines().slice(linesBefore).find((l) => l.msg === 'request' && l.key === 'leaving/put.txt');
      expect(await eventually(() => putLine() !== undefined)).toBe(true);
      expect(putLine()).toMatchObject({ method: 'PUT', status: 200, completed: false });
      expect((await readFile(path.join(dir, 'leaving/put.txt'))).toString()).toBe(body);
    } finally {
      putDelayMs = 0;
    }
    // Both counted (plus this /stats request itself, which is counted after it answers).
    expect((await stats(gw)).requests_total).toBeGreaterThanOrEqual(before + 3);
  });

  it('answers a GET pipelined after a PUT on one connection with the new body', async () => {
    for (let attempt = 0; attempt < 3; attempt++) {
      const key = `pipe/${attempt}.txt`;
      expect((await fetch(url(key), { method: 'PUT', headers: AUTH, body: 'old body' })).status).toBe(200);
      expect(await (await fetch(url(key), { headers: AUTH })).text()).toBe('old body'); // now cached
      const next = `new body ${attempt}`;
      const raw = await rawExchange(gw.url, [
        `PUT /media/${key} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKEN}\r\nContent-Length: ${next.length}\r\n\r\n${next}` +
          `GET /media/${key} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKEN}\r\n\r\n`,
      ]);
      const [put, get] = parseResponses(raw);
      expect(put!.status).toBe(200);
      expect(get!.status).toBe(200);
      expect(get!.body.toString()).toBe(next);
    }
  });

  it('answers client-caused filesystem errors with a fitting 4xx, not counted as store errors', async () => {
    await mkdir(path.join(dir, 'adir', 'sub'), { recursive: true });
    await writeFile(path.join(dir, 'afile'), 'x');
    await writeFile(path.join(outside, 'secret.txt'), 'outside the root');
    await symlink(path.join(outside, 'secret.txt'), path.join(dir, 'escape.txt'));
    await symlink(outside, path.join(dir, 'escapedir'));
    const errsBefore = (await stats(gw)).upstream_err_total;
    const long = 'n'.repeat(300);
    const cases: Array<[method: string, key: string, status: number]> = [
      ['GET', 'adir', 404],
      ['HEAD', 'adir', 404],
      ['PUT', 'adir', 409],
      ['GET', 'afile/b/c', 404],
      ['PUT', 'afile/b/c', 409],
      ['GET', `adir/${long}`, 414],
      ['HEAD', long, 414],
      ['PUT', `adir/${long}`, 414],
      ['PUT', `${long}/x`, 414],
      ['PUT', '.cachegate-tmp/sneaky.part', 403],
      ['GET', 'escape.txt', 403],
      ['PUT', 'escapedir/planted.txt', 403],
    ];
    for (const [method, key, status] of cases) {
      const res = await fetch(url(key), { method, headers: AUTH, ...(method === 'PUT' ? { body: 'data' } : {}) });
      expect({ method, key: key.slice(0, 40), status: res.status }).toEqual({ method, key: key.slice(0, 40), status });
      if (method !== 'HEAD') expectJsonError(Buffer.from(await res.arrayBuffer()));
    }
    // Not-found answers count as cachegate counts them (kind not_found); nothing else does.
    const notFound = cases.filter(([m, , s]) => m !== 'PUT' && s === 404).length;
    expect((await stats(gw)).upstream_err_total - errsBefore).toBeLessThanOrEqual(notFound);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).not.toMatch(/cachegate_upstream_err_total\{[^}]*error_kind="(invalid_key|other|access_denied)"/);
    expect(await readFile(path.join(outside, 'secret.txt'), 'utf8')).toBe('outside the root');
    await expect(readFile(path.join(outside, 'planted.txt'))).rejects.toThrow();
  });

  it("refuses a raw '#' in the target on the route and on the hit fast path alike", async () => {
    expect((await fetch(url('h'), { method: 'PUT', headers: AUTH, body: 'object h' })).status).toBe(200);
    expect((await fetch(url('h%231'), { method: 'PUT', headers: AUTH, body: 'object h#1' })).status).toBe(200);
    // Both are now memory hits (write-through), so `h` would be served by the fast path.
    for (const target of ['/media/h#1', '/media/h#', '/media/unknown#x', '/media/h?sig=a#b']) {
      const [res] = parseResponses(await rawExchange(gw.url, [`GET ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKEN}\r\n\r\n`]));
      expect(res!.status).toBe(400);
      expectJsonError(res!.body, 'GW_ERR_BAD_REQUEST');
    }
    expect(await (await fetch(url('h%231'), { headers: AUTH })).text()).toBe('object h#1');
  });

  it('answers a repeated Authorization header 400, cached or not', async () => {
    await writeFile(path.join(dir, 'twice.txt'), 'twice');
    const req = `GET /media/twice.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKEN}\r\nAuthorization: Bearer wrong\r\n\r\n`;
    const cold = parseResponses(await rawExchange(gw.url, [req]))[0]!;
    expect(cold.status).toBe(400);
    expectJsonError(cold.body);
    expect(await (await fetch(url('twice.txt'), { headers: AUTH })).text()).toBe('twice'); // cached now
    const hot = parseResponses(await rawExchange(gw.url, [req]))[0]!;
    expect(hot.status).toBe(400);
    // Also with the wrong one first, and for HEAD.
    const swapped = `HEAD /media/twice.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nAuthorization: Bearer ${TEST_TOKEN}\r\n\r\n`;
    expect(parseResponses(await rawExchange(gw.url, [swapped]), 1)[0]!.status).toBe(400);
  });

  it('refuses links a signer and a verifier could read differently, and still takes canonical ones', async () => {
    await writeFile(path.join(dir, 'linked.txt'), 'linked');
    const get = (sig: string) => fetch(`${url('linked.txt')}?sig=${sig}`);
    const dupPath = linkFromText(`{"v":1,"exp":${exp()},"m":"GET","b":"media","p":"x","p":"linked.txt"}`);
    const dupEscaped = linkFromText(`{"v":1,"exp":${exp()},"m":"GET","b":"media","p":"linked.txt","\\u0070":"x"}`);
    for (const sig of [dupPath, dupEscaped, link({ m: 'get', b: 'media', p: 'linked.txt' }), link({ m: 'Get', b: 'media', p: 'linked.txt' })]) {
      const res = await get(sig);
      expect(res.status).toBe(401);
      expectJsonError(Buffer.from(await res.arrayBuffer()), 'GW_ERR_UNAUTHORIZED');
    }
    const ok = await get(link({ m: 'GET', b: 'media', p: 'linked.txt' }));
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('linked');
    // Cached now: the fast path refuses the same links.
    expect((await get(dupPath)).status).toBe(401);
    expect((await get(link({ m: 'get', b: 'media', p: 'linked.txt' }))).status).toBe(401);
  });

  it('answers 501 to a transfer coding other than chunked, and stores nothing', async () => {
    await writeFile(path.join(dir, 'coded.txt'), 'before');
    const puts = store.calls.put;
    // Every coding but a lone chunked is a 501 with the connection closed; chunked applied twice
    // is refused by Node's parser itself as malformed framing (400, RFC 9112 §6.1).
    const cases: Array<[string, number]> = [['gzip, chunked', 501], ['deflate, chunked', 501], ['gzip', 501], ['chunked, chunked', 400]];
    for (const [te, status] of cases) {
      const [res] = parseResponses(
        await rawExchange(gw.url, [
          `PUT /media/coded.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKEN}\r\nTransfer-Encoding: ${te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
        ]),
      );
      expect({ te, status: res!.status }).toEqual({ te, status });
      expectJsonError(res!.body, status === 501 ? 'GW_ERR_NOT_IMPLEMENTED' : 'GW_ERR_BAD_REQUEST');
    }
    expect(store.calls.put).toBe(puts);
    expect(await readFile(path.join(dir, 'coded.txt'), 'utf8')).toBe('before');
  });

  it('gives parser-level refusals the one-line JSON error', async () => {
    const targets = [
      `GET /media/a\\b HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKEN}\r\n\r\n`,
      `GET /media/a.txt HTTP/1.1\r\nAuthorization: Bearer ${TEST_TOKEN}\r\n\r\n`,
      'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n',
      `GET /media/a.txt HTTP/1.1\r\nHost: bad host\r\n\r\n`,
    ];
    for (const t of targets) {
      const [res] = parseResponses(await rawExchange(gw.url, [t]));
      expect(res!.status).toBe(400);
      expect(res!.headers['content-type']).toBe('application/json');
      expectJsonError(res!.body);
    }
  });

  it('checks credentials before telling an Expect: 100-continue client to send its body', async () => {
    await writeFile(path.join(dir, 'expect.txt'), 'unchanged');
    const head = (auth: string) =>
      `PUT /media/expect.txt HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 5\r\nExpect: 100-continue\r\n\r\n`;
    const refused = await rawExchange(gw.url, [head('')]);
    expect(refused.toString('latin1')).toMatch(/^HTTP\/1\.1 401 /);
    expect(refused.toString('latin1')).not.toContain('100 Continue');
    const wrong = await rawExchange(gw.url, [head('Authorization: Bearer nope\r\n')]);
    expect(wrong.toString('latin1')).toMatch(/^HTTP\/1\.1 401 /);

    // With good credentials: 100 first, then the body is read and stored.
    const raw = await rawExchange(gw.url, [
      head(`Authorization: Bearer ${TEST_TOKEN}\r\n`),
      (received) => until(received, (b) => b.toString('latin1').includes('100 Continue')),
      'fresh',
    ]);
    const [cont, done] = parseResponses(raw);
    expect(cont!.status).toBe(100);
    expect(done!.status).toBe(200);
    expect(await readFile(path.join(dir, 'expect.txt'), 'utf8')).toBe('fresh');
  });
});


describe.each(BACKENDS)('every PUT refusal over $name writes nothing', (backend) => {
  let made: Awaited<ReturnType<(typeof BACKENDS)[number]['make']>>;
  let gw: TestGateway;
  const KEY = 'refuse/target.bin';
  const original = randomBytes(2048);

  beforeAll(async () => {
    made = await backend.make();
    gw = await startGateway(
      {
        auth: { bearer_token: TEST_TOKEN, public_key: PUBLIC_KEY },
        cache: { max_memory: '8MiB' },
        limits: { max_upload_size: '64KiB' },
      },
      [countingStore(made.store)],
    );
    expect((await fetch(`${gw.url}/media/${KEY}`, { method: 'PUT', headers: AUTH, body: original })).status).toBe(200);
  });
  afterAll(async () => {
    await gw?.close();
    await made?.stop();
  });

  const host = 'Host: x\r\n';
  const bearer = `Authorization: Bearer ${TEST_TOKEN}\r\n`;
  const body = 'replacement';
  const refusals: Array<[name: string, request: () => string, status: number]> = [
    ['no credentials', () => `PUT /media/${KEY} HTTP/1.1\r\n${host}Content-Length: ${body.length}\r\n\r\n${body}`, 401],
    ['a wrong token', () => `PUT /media/${KEY} HTTP/1.1\r\n${host}Authorization: Bearer nope\r\nContent-Length: ${body.length}\r\n\r\n${body}`, 401],
    ['a GET link', () => `PUT /media/${KEY}?sig=${link({ m: 'GET', b: 'media', p: KEY })} HTTP/1.1\r\n${host}Content-Length: ${body.length}\r\n\r\n${body}`, 403],
    ['a link with another ct', () => `PUT /media/${KEY}?sig=${link({ m: 'PUT', b: 'media', p: KEY, ct: 'image/png' })} HTTP/1.1\r\n${host}Content-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`, 403],
    ['a link with another len', () => `PUT /media/${KEY}?sig=${link({ m: 'PUT', b: 'media', p: KEY, len: 3 })} HTTP/1.1\r\n${host}Content-Length: ${body.length}\r\n\r\n${body}`, 403],
    ['no length', () => `PUT /media/${KEY} HTTP/1.1\r\n${host}${bearer}\r\n${body}`, 411],
    ['a malformed length', () => `PUT /media/${KEY} HTTP/1.1\r\n${host}${bearer}Content-Length: 1e3\r\n\r\n${body}`, 400],
    ['an announced length over the limit', () => `PUT /media/${KEY} HTTP/1.1\r\n${host}${bearer}Content-Length: ${128 * 1024}\r\n\r\n${body}`, 413],
    ['a chunked body over the limit', () => `PUT /media/${KEY} HTTP/1.1\r\n${host}${bearer}Transfer-Encoding: chunked\r\n\r\n${'8000\r\n' + 'a'.repeat(0x8000) + '\r\n'}${'8000\r\n' + 'b'.repeat(0x8000) + '\r\n'}${'8000\r\n' + 'c'.repeat(0x8000) + '\r\n'}0\r\n\r\n`, 413],
    ['a gzip transfer coding', () => `PUT /media/${KEY} HTTP/1.1\r\n${host}${bearer}Transfer-Encoding: gzip, chunked\r\n\r\nb\r\n${body}\r\n0\r\n\r\n`, 501],
    ['a repeated Authorization', () => `PUT /media/${KEY} HTTP/1.1\r\n${host}${bearer}${bearer}Content-Length: ${body.length}\r\n\r\n${body}`, 400],
    ['a raw # in the target', () => `PUT /media/${KEY}#x HTTP/1.1\r\n${host}${bearer}Content-Length: ${body.length}\r\n\r\n${body}`, 400],
    ['a duplicate-name link', () => `PUT /media/${KEY}?sig=${linkFromText(`{"v":1,"exp":${exp()},"m":"PUT","b":"media","p":"x","p":"${KEY}"}`)} HTTP/1.1\r\n${host}Content-Length: ${body.length}\r\n\r\n${body}`, 401],
  ];

  it.each(refusals)('%s: an error answer, and the object as it was', async (_name, request, status) => {
    const [res] = parseResponses(await rawExchange(gw.url, [request()]));
    expect(res!.status).toBe(status);
    expectJsonError(res!.body);
    expect((await readAll(made.store, KEY))!.equals(original)).toBe(true);
    // The cached copy is the old one too.
    const get = await fetch(`${gw.url}/media/${KEY}`, { headers: AUTH });
    expect(Buffer.from(await get.arrayBuffer()).equals(original)).toBe(true);
  });
});
