/**
 * The cluster: three gateway processes (the one-process-per-core recipe) behind Debian's HAProxy
 * running deploy/haproxy/haproxy.cfg, on loopback, against s3rver. What the store received is
 * read from s3rver's own request log. The tests run in order and share the cluster:
 *
 * 1. 300 objects, each read through three differently signed links and once by bearer: one store
 *    GET per object cluster-wide, and all four reads on one node.
 * 2. HEAD ?prefetch=1 and the later GET land on one node; the GET is a hit.
 * 3. A PUT, then a GET: the GET is a hit, on the node that took the PUT.
 * 4. One node SIGKILLed under steady load: every request started after HAProxy marked it down
 *    succeeds; its keys are fetched once each by their new owners (twice only for a key caught
 *    between kill and mark-down, see below), nobody else's are fetched.
 * 5. The node back on its disk: its keys return to it, and objects overwritten while it was away
 *    (through another node, and in the store) are served in their new version.
 * 6. hash-balance-factor measured against the shipped config (no factor).
 *
 * Skipped, with a message, when haproxy is not installed (.ci/run installs Debian's).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeypair, signLink } from '../../src/sign/index.js';
import { freePort } from '../helpers/free-port.js';
import { createTestS3Client, startS3rver, type S3rverInstance, type S3rverRequest } from '../helpers/s3rver.js';
import { GatewayNode, HaproxyInstance, haproxyVersion, waitFor } from './cluster.js';

const HAPROXY = haproxyVersion();
if (!HAPROXY) console.warn('cluster tests SKIPPED: haproxy is not installed (apt-get install haproxy; .ci/run does this)');

const KiB = 1024;
const BUCKET = 'cluster';
const STORE = 'media';
const TOKEN = 'cluster-bearer-token-0123456789';
const BEARER = { authorization: `Bearer ${TOKEN}` };
const OBJECTS = 300;
/** Full weight in the shipped config (`default-server ... weight 100`). */
const FULL_WEIGHT = 100;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const keyOf = (i: number, prefix = 'obj') => `${prefix}/${String(i).padStart(3, '0')}.mp4`;

interface Reply {
  status: number;
  node: string | null;
  hit: string | null;
  body: Buffer;
}

/** Run `fn` over `items` with at most `limit` at a time (the machine has two shared cores). */
async function eachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

describe.skipIf(!HAPROXY)(`cluster: 3 gateways behind HAProxy ${HAPROXY ?? ''}`, () => {
  let dir: string;
  let srv: S3rverInstance;
  let s3: S3Client;
  let privateKey: string;
  let nodes: GatewayNode[];
  let hp: HaproxyInstance;
  const bodies = new Map<string, Buffer>();
  /** Which node served each of the 300 objects in test 1. */
  const owner = new Map<string, string>();

  const put = async (key: string, body: Buffer) => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ContentType: 'video/mp4' }));
    bodies.set(key, body);
  };
  const objectPath = (key: string) => `/${STORE}/${key}`;
  const storeGets = (log: S3rverRequest[], key: string) => log.filter((r) => r.method === 'GET' && r.path === `/${BUCKET}/${key}`);
  const storeHeads = (log: S3rverRequest[], key: string) => log.filter((r) => r.method === 'HEAD' && r.path === `/${BUCKET}/${key}`);

  async function request(url: string, init: RequestInit = {}): Promise<Reply> {
    const res = await fetch(url, init);
    return { status: res.status, node: res.headers.get('x-cg-node'), hit: res.headers.get('x-cg-status'), body: Buffer.from(await res.arrayBuffer()) };
  }
  const viaBearer = (base: string, key: string, init: RequestInit = {}) => request(`${base}${objectPath(key)}`, { ...init, headers: { ...BEARER, ...init.headers } });
  const viaLink = async (base: string, key: string, expiresIn: number) =>
    request(await signLink({ baseUrl: base, bucket: STORE, path: key, privateKey, expiresIn }));

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-cluster-'));
    srv = await startS3rver({ buckets: [BUCKET] });
    s3 = createTestS3Client(srv);
    const keys = await generateKeypair();
    privateKey = keys.privateKey;
    for (let i = 0; i < OBJECTS; i++) await put(keyOf(i), randomBytes(1 * KiB + ((i * 997) % (48 * KiB))));
    // One shared environment, as in an EnvironmentFile; the node adds port, disk and id.
    const shared: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      LOG_LEVEL: 'warn',
      CACHEGATE__AUTH__BEARER_TOKEN: TOKEN,
      CACHEGATE__AUTH__PUBLIC_KEY: keys.publicKey,
      CACHEGATE__CACHE__MAX_MEMORY: '64MiB',
      CACHEGATE__CACHE__MAX_DISK: '256MiB',
      CACHEGATE__SERVER__NODE_HEADER: 'true',
      CACHEGATE__SERVER__PROBE_INTERVAL: '2s',
      [`CACHEGATE__STORES__${STORE.toUpperCase()}__TYPE`]: 's3',
      [`CACHEGATE__STORES__${STORE.toUpperCase()}__BUCKET`]: BUCKET,
      [`CACHEGATE__STORES__${STORE.toUpperCase()}__ENDPOINT`]: srv.endpoint,
      [`CACHEGATE__STORES__${STORE.toUpperCase()}__REGION`]: srv.region,
      [`CACHEGATE__STORES__${STORE.toUpperCase()}__ACCESS_KEY`]: srv.accessKeyId,
      [`CACHEGATE__STORES__${STORE.toUpperCase()}__SECRET_KEY`]: srv.secretAccessKey,
      [`CACHEGATE__STORES__${STORE.toUpperCase()}__ALLOW_HTTP`]: 'true',
    };
    nodes = [];
    for (let i = 1; i <= 3; i++) nodes.push(await GatewayNode.create(await freePort(), path.join(dir, 'cache'), shared));
    await Promise.all(nodes.map((n) => n.start()));
    hp = await HaproxyInstance.start(dir, nodes);
  });

  afterAll(async () => {
    await hp?.stop();
    await Promise.all((nodes ?? []).map((n) => n.kill('SIGKILL')));
    s3?.destroy();
    await srv?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('fetches each of 300 objects once cluster-wide, read through three differently signed links and by bearer', async () => {
    const before = srv.requests.length;
    const keys = Array.from({ length: OBJECTS }, (_, i) => keyOf(i));
    await eachLimited(keys, 4, async (key) => {
      const replies = [await viaLink(hp.url, key, 600), await viaLink(hp.url, key, 1200), await viaLink(hp.url, key, 1800), await viaBearer(hp.url, key)];
      for (const r of replies) {
        expect(r.status, key).toBe(200);
        expect(sha(r.body), key).toBe(sha(bodies.get(key)!));
      }
      expect(new Set(replies.map((r) => r.node)).size, `${key} served by one node`).toBe(1);
      expect(replies.map((r) => r.hit), key).toEqual(['hit=0', 'hit=1', 'hit=1', 'hit=1']);
      owner.set(key, replies[0]!.node!);
    });
    const log = srv.requests.slice(before);
    const perObject = keys.map((k) => storeGets(log, k).length);
    expect(perObject.filter((n) => n !== 1), 'objects not fetched exactly once').toEqual([]);
    // Objects are read as slices: each object here is one slice, fetched by one GET of it (a
    // ranged GET from byte 0), never a whole-object GET beside it.
    expect(log.filter((r) => r.method === 'GET' && r.range !== undefined && !r.range.startsWith('bytes=0-'))).toEqual([]);
    const spread = Object.fromEntries(nodes.map((n) => [n.name, [...owner.values()].filter((o) => o === n.name).length]));
    console.log(`cluster: ${OBJECTS} objects x 4 reads: ${perObject.reduce((a, b) => a + b, 0)} store GETs; owners ${JSON.stringify(spread)}`);
    for (const n of nodes) expect(spread[n.name], `${n.name} owns some keys`).toBeGreaterThan(0);
  });

  it('sends a HEAD ?prefetch=1 and the later GET to one node, and the GET is a hit', async () => {
    const key = 'pf/warm.mp4';
    await put(key, randomBytes(200 * KiB));
    const before = srv.requests.length;
    const head = await request(`${hp.url}${objectPath(key)}?prefetch=1`, { method: 'HEAD', headers: BEARER });
    expect(head.status).toBe(200);
    // The prefetch fills in the background; a plain HEAD says when the node holds it.
    await waitFor('the prefetch to land', async () => (await viaBearer(hp.url, key, { method: 'HEAD' })).hit === 'hit=1');
    const get = await viaLink(hp.url, key, 900);
    expect(get.status).toBe(200);
    expect(get.hit).toBe('hit=1');
    expect(get.node).toBe(head.node);
    expect(sha(get.body)).toBe(sha(bodies.get(key)!));
    expect(storeGets(srv.requests.slice(before), key)).toHaveLength(1);
  });

  it('sends a PUT and the later GET to the same owner, and the GET is a hit', async () => {
    const key = 'put/new.mp4';
    const body = randomBytes(100 * KiB);
    const before = srv.requests.length;
    const written = await viaBearer(hp.url, key, { method: 'PUT', body, headers: { 'content-type': 'video/mp4' } });
    expect(written.status).toBeLessThan(300);
    const get = await viaLink(hp.url, key, 600);
    expect(get.status).toBe(200);
    expect(get.hit).toBe('hit=1');
    expect(get.node).toBe(written.node);
    expect(get.body.equals(body)).toBe(true);
    expect(storeGets(srv.requests.slice(before), key)).toHaveLength(0);
    bodies.set(key, body);
  });

  describe('losing a node and getting it back', () => {
    /** The second node: `cg2` in HAProxy's config. */
    const victim = () => nodes[1]!;
    const victimServer = 'cg2';
    let victimName: string;
    const victimKeys = () => [...owner].filter(([, o]) => o === victimName).map(([k]) => k);
    /** Overwritten while the victim is away: one through HAProxy (a stand-in node), one in the store. */
    let viaGateway: string;
    let inStore: string;

    it('keeps answering when one node is SIGKILLed under steady load; its keys are fetched once each by their new owners', async () => {
      victimName = victim().name;
      const keys = [...owner.keys()];
      const before = srv.requests.length;
      interface Outcome {
        key: string;
        startedMs: number;
        ok: boolean;
        node: string | null;
      }
      const outcomes: Outcome[] = [];
      let downAtMs = Infinity;
      let afterDown = 0;
      let stop = false;
      const worker = async (seed: number) => {
        for (let i = seed; !stop; i += 7) {
          const key = keys[(i * 31) % keys.length]!;
          const startedMs = performance.now();
          let ok = false;
          let node: string | null = null;
          try {
            const r = await viaBearer(hp.url, key);
            ok = r.status === 200 && r.body.equals(bodies.get(key)!);
            node = r.node;
          } catch {
            ok = false;
          }
          outcomes.push({ key, startedMs, ok, node });
          if (startedMs > downAtMs && ++afterDown >= 400) stop = true;
        }
      };
      const load = Promise.all([worker(0), worker(3)]);
      await waitFor('some load', () => outcomes.length >= 100);
      await victim().kill('SIGKILL');
      const killedAtMs = performance.now();
      await waitFor('HAProxy to mark the node down', async () => (await hp.servers()).find((s) => s.name === victimServer)?.status.startsWith('DOWN') ?? false);
      downAtMs = performance.now();
      await load;

      const after = outcomes.filter((o) => o.startedMs > downAtMs);
      const window = outcomes.filter((o) => o.startedMs >= killedAtMs - 1000 && o.startedMs <= downAtMs);
      expect(after.length).toBeGreaterThanOrEqual(400);
      expect(after.filter((o) => !o.ok), 'requests started after the node was marked down that failed').toEqual([]);
      expect(after.filter((o) => o.node === victimName)).toEqual([]);

      // Every key of the lost node, once more (the load may not have touched them all).
      for (const key of victimKeys()) {
        const r = await viaBearer(hp.url, key);
        expect(r.status, key).toBe(200);
        expect(r.body.equals(bodies.get(key)!), key).toBe(true);
      }
      const log = srv.requests.slice(before);
      const refetched = victimKeys().map((k) => ({ key: k, gets: storeGets(log, k).length }));
      const others = [...owner].filter(([, o]) => o !== victimName).map(([k]) => storeGets(log, k).length);
      // A request caught between the kill and the mark-down is retried, and its last retry is
      // redispatched: HAProxy walks the ring clockwise from the key's nearest point, skipping the
      // dead node (lb_chash.c, chash_get_server_hash with `avoid`). Once the node is out of the
      // ring, the nearest remaining point may lie the other way, so that stand-in need not be
      // the key's new owner, and the owner fetches the key once more. Only a key requested in that
      // window may be fetched twice; every other key of the lost node exactly once.
      const inWindow = new Set(window.map((o) => o.key));
      const twice = refetched.filter((r) => r.gets === 2 && inWindow.has(r.key));
      console.log(
        `cluster: ${victimName} killed: ${window.filter((o) => !o.ok).length} of ${window.length} requests failed between kill and mark-down; ` +
          `${after.length} after, all ok; its ${refetched.length} keys refetched ${refetched.reduce((a, r) => a + r.gets, 0)} times ` +
          `(${twice.length} twice, each requested between kill and mark-down); others' keys ${others.reduce((a, b) => a + b, 0)} times`,
      );
      expect(
        refetched.filter((r) => r.gets !== 1 && !twice.includes(r)),
        "lost node's keys not fetched once (or twice, when requested between kill and mark-down)",
      ).toEqual([]);
      expect(others.filter((n) => n !== 0), "surviving nodes' keys refetched").toEqual([]);
    });

    it('gives the node its keys back when it returns, and serves objects overwritten while it was away in their new version', async () => {
      const keys = victimKeys();
      expect(keys.length).toBeGreaterThanOrEqual(2);
      [viaGateway, inStore] = [keys[0]!, keys[1]!];
      // Through HAProxy: the PUT reaches the stand-in owner (and the store).
      const v2 = randomBytes(33 * KiB);
      const written = await viaBearer(hp.url, viaGateway, { method: 'PUT', body: v2, headers: { 'content-type': 'video/mp4' } });
      expect(written.status).toBeLessThan(300);
      expect(written.node).not.toBe(victimName);
      bodies.set(viaGateway, v2);
      // Straight to the store, behind every gateway's back.
      await put(inStore, randomBytes(34 * KiB));

      const before = srv.requests.length;
      await victim().start();
      // Back up, and slowstart finished: the node has its full share of the ring again.
      await waitFor(
        'the node UP at full weight',
        async () => {
          const s = (await hp.servers()).find((x) => x.name === victimServer);
          return s?.status === 'UP' && s.weight === FULL_WEIGHT;
        },
        120_000,
      );
      for (const key of keys) {
        const r = await viaBearer(hp.url, key);
        expect(r.status, key).toBe(200);
        expect(r.node, `${key} is back on its owner`).toBe(victimName);
        expect(sha(r.body), key).toBe(sha(bodies.get(key)!));
      }
      const log = srv.requests.slice(before);
      const unchanged = keys.filter((k) => k !== viaGateway && k !== inStore);
      // Each entry from before the restart: checked once (a HEAD); only the two changed ones refetched.
      expect(keys.map((k) => storeHeads(log, k).length).filter((n) => n !== 1)).toEqual([]);
      expect(storeGets(log, viaGateway)).toHaveLength(1);
      expect(storeGets(log, inStore)).toHaveLength(1);
      expect(unchanged.map((k) => storeGets(log, k).length).filter((n) => n !== 0)).toEqual([]);
      console.log(
        `cluster: ${victimName} back: ${keys.length} keys returned to it, ${keys.length} revalidating HEADs, ` +
          `${keys.reduce((a, k) => a + storeGets(log, k).length, 0)} store GETs (the 2 overwritten objects)`,
      );
      // And a second round is all hits on the owner, with no store request at all.
      const quiet = srv.requests.length;
      for (const key of keys) {
        const r = await viaBearer(hp.url, key);
        expect(r.hit, key).toBe('hit=1');
        expect(r.node, key).toBe(victimName);
      }
      expect(srv.requests.slice(quiet).filter((r) => r.path.startsWith(`/${BUCKET}/obj/`))).toEqual([]);
    });
  });

  describe('hash-balance-factor, measured', () => {
    /**
     * Fresh objects read 4 times each through an HAProxy, sequentially (one client) and with 4
     * clients at once; counts the objects the store was asked for more than once and the objects
     * answered by more than one node.
     */
    async function spill(via: HaproxyInstance, prefix: string, clients: number): Promise<{ fetchedTwice: number; multiNode: number; objects: number }> {
      const n = 120;
      const keys = Array.from({ length: n }, (_, i) => keyOf(i, prefix));
      for (const k of keys) await put(k, randomBytes(4 * KiB + (k.length % 7) * 1000));
      const before = srv.requests.length;
      const seen = new Map<string, Set<string>>();
      const reads = keys.flatMap((k) => [k, k, k, k]);
      await eachLimited(reads, clients, async (key) => {
        const r = await viaBearer(via.url, key);
        expect(r.status, key).toBe(200);
        expect(r.body.equals(bodies.get(key)!), key).toBe(true);
        if (!seen.has(key)) seen.set(key, new Set());
        seen.get(key)!.add(r.node!);
      });
      const log = srv.requests.slice(before);
      return {
        objects: n,
        fetchedTwice: keys.filter((k) => storeGets(log, k).length > 1).length,
        multiNode: keys.filter((k) => seen.get(k)!.size > 1).length,
      };
    }

    /** One hot object read 400 times by 8 clients at once: which nodes answered, and store GETs. */
    async function hotKey(via: HaproxyInstance, key: string): Promise<{ nodes: Record<string, number>; storeGets: number }> {
      await put(key, randomBytes(16 * KiB));
      const before = srv.requests.length;
      const nodesSeen: Record<string, number> = {};
      await eachLimited(Array.from({ length: 400 }, () => key), 8, async () => {
        const r = await viaBearer(via.url, key);
        expect(r.status).toBe(200);
        nodesSeen[r.node!] = (nodesSeen[r.node!] ?? 0) + 1;
      });
      return { nodes: nodesSeen, storeGets: storeGets(srv.requests.slice(before), key).length };
    }

    it('spills no object with the shipped config; hash-balance-factor 150 is measured and reported', async () => {
      const factor = await HaproxyInstance.start(dir, nodes, (cfg) => {
        const edited = cfg.replace('    hash-type consistent\n', '    hash-type consistent\n    hash-balance-factor 150\n');
        expect(edited).not.toBe(cfg);
        return edited;
      });
      try {
        expect(await factor.command('show backend')).toContain('cachegate');
        const results = {
          shipped_sequential: await spill(hp, 'sp0s', 1),
          shipped_4_clients: await spill(hp, 'sp0c', 4),
          factor150_sequential: await spill(factor, 'sp150s', 1),
          factor150_4_clients: await spill(factor, 'sp150c', 4),
        };
        console.log(`cluster: spill (objects fetched twice / served by 2+ nodes, of 120): ${JSON.stringify(results)}`);
        const hot = { shipped: await hotKey(hp, 'hot/shipped.mp4'), factor150: await hotKey(factor, 'hot/factor.mp4') };
        console.log(`cluster: hot key, 400 reads by 8 clients (answers per node, store GETs): ${JSON.stringify(hot)}`);
        expect(Object.keys(hot.shipped.nodes)).toHaveLength(1);
        expect(hot.shipped.storeGets).toBe(1);
        expect(results.shipped_sequential).toMatchObject({ fetchedTwice: 0, multiNode: 0 });
        expect(results.shipped_4_clients).toMatchObject({ fetchedTwice: 0, multiNode: 0 });
      } finally {
        await factor.stop();
      }
    });
  });
});
