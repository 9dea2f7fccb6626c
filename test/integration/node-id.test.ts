/**
 * `server.node_id` and `server.node_header`: the node's name is in /stats and on every log line
 * (access lines included); `X-CG-Node` is sent only when asked for, and then on every answer:
 * misses, fast-path hits, HEADs, errors and the gate's refusals.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { AUTH, TEST_TOKEN, startGateway, type TestGateway } from '../helpers/gateway.js';
import { parseResponses, rawExchange } from '../helpers/raw-http.js';
import { captureLog } from '../helpers/log-capture.js';

let dir: string;
let root: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cg-node-id-'));
  root = path.join(dir, 'media');
  await mkdir(root, { recursive: true });
  await writeFile(path.join(root, 'a.txt'), 'hello node\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});


describe('server.node_id', () => {
  it('defaults to the hostname, is in /stats, and sends no X-CG-Node by default', async () => {
    expect(validateConfig({ auth: { bearer_token: TEST_TOKEN }, stores: { m: { type: 'fs', root: '/x' } } }).server).toMatchObject({
      node_id: hostname(),
      node_header: false,
    });
    const gw = await startGateway({ stores: { media: { type: 'fs', root } } });
    try {
      const res = await fetch(`${gw.url}/media/a.txt`, { headers: AUTH });
      expect(await res.text()).toBe('hello node\n');
      expect(res.headers.has('x-cg-node')).toBe(false);
      const stats = (await (await fetch(`${gw.url}/stats`)).json()) as { node_id: string };
      expect(stats.node_id).toBe(hostname());
    } finally {
      await gw.close();
    }
  });

  it('refuses a node id that cannot go into a header, naming the setting', () => {
    expect(() =>
      validateConfig({ auth: { bearer_token: TEST_TOKEN }, server: { node_id: 'node one' }, stores: { m: { type: 'fs', root: '/x' } } }),
    ).toThrow(/server\.node_id/);
  });

  describe('with node_header: true', () => {
    let gw: TestGateway;
    const logs = captureLog();
    beforeAll(async () => {
      gw = await startGateway({ server: { node_id: 'edge-7', node_header: true }, stores: { media: { type: 'fs', root } } }, undefined, {
        log: logs.log,
      });
    });
    afterAll(async () => {
      await gw.close();
    });

    it('names the node on misses, fast-path hits, HEADs, errors and refusals', async () => {
      const miss = await fetch(`${gw.url}/media/a.txt`, { headers: AUTH });
      expect(miss.headers.get('x-cg-status')).toBe('hit=0');
      await miss.text();
      const hit = await fetch(`${gw.url}/media/a.txt`, { headers: AUTH });
      expect(hit.headers.get('x-cg-status')).toBe('hit=1');
      const head = await fetch(`${gw.url}/media/a.txt`, { method: 'HEAD', headers: AUTH });
      const missing = await fetch(`${gw.url}/media/none.txt`, { headers: AUTH });
      const unauthorized = await fetch(`${gw.url}/media/a.txt`);
      for (const [name, res] of Object.entries({ miss, hit, head, missing, unauthorized })) {
        expect(res.headers.get('x-cg-node'), name).toBe('edge-7');
      }
      expect(missing.status).toBe(404);
      expect(unauthorized.status).toBe(401);
      expect(await hit.text()).toBe('hello node\n');

      // Refused by the request gate, before any route.
      const raw = await rawExchange(gw.url, [`GET /media/a\\b.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKEN}\r\n\r\n`]);
      const [refused] = parseResponses(raw);
      expect(refused!.status).toBe(400);
      expect(refused!.headers['x-cg-node']).toBe('edge-7');
    });

    it('puts the node id in /stats and on every access line', async () => {
      const before = logs.lines().length;
      await (await fetch(`${gw.url}/media/a.txt`, { headers: AUTH })).text();
      const stats = (await (await fetch(`${gw.url}/stats`)).json()) as { node_id: string };
      expect(stats.node_id).toBe('edge-7');
      const access = logs.lines().slice(before).filter((l) => l.msg === 'request');
      expect(access.length).toBeGreaterThanOrEqual(1);
      for (const line of access) expect(line.node_id).toBe('edge-7');
      expect(access.some((l) => l.key === 'a.txt' && l.cache === 'hit')).toBe(true);
    });
  });
});
