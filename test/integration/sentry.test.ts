/**
 * Optional Sentry, as in cachegate: with `sentry.dsn` set, server errors are sent by Sentry's SDK
 * as envelopes to the DSN's project (here a local receiver); with `dsn: null` nothing is sent. No
 * event carries a signature or a token.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH, TEST_TOKEN, startGateway } from '../helpers/gateway.js';

describe('sentry', () => {
  let dir: string;
  let receiver: http.Server;
  let port: number;
  const received: { url: string; body: string }[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-sentry-'));
    await writeFile(path.join(dir, 'file'), 'x');
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        received.push({ url: req.url!, body });
        res.end('{}');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    port = (receiver.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((r) => receiver.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it('sends server errors to the DSN, with no secret in the event', async () => {
    received.length = 0;
    const gw = await startGateway({
      sentry: { dsn: `http://publickey@127.0.0.1:${port}/42`, environment: 'test' },
      stores: { broken: { type: 'fs', root: path.join(dir, 'file', 'sub') } },
    });
    try {
      // The bearer token authenticates; the sig in the query must not reach the event either.
      const res = await fetch(`${gw.url}/broken/some/key.bin?sig=abc.def`, { headers: AUTH });
      expect(res.status).toBe(502);
      await gw.gateway.errors.flush();
      expect(received.length).toBe(1);
      const [event] = received;
      // The SDK puts its auth in the query: /api/<project>/envelope/?sentry_version=7&sentry_key=…
      const url = new URL(event!.url, 'http://receiver');
      expect(url.pathname).toBe('/api/42/envelope/');
      expect(url.searchParams.get('sentry_key')).toBe('publickey');
      const lines = event!.body.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines[1]).toMatchObject({ type: 'event' });
      const ev = lines[2] as { environment?: string; platform?: string; tags?: Record<string, string>; exception?: { values: { type: string; value: string; stacktrace?: { frames: unknown[] } }[] } };
      expect(ev.environment).toBe('test');
      expect(ev.platform).toBe('node');
      expect(ev.tags).toMatchObject({ code: 'GW_ERR_STORE', method: 'GET', status: '502' });
      const values = ev.exception!.values;
      expect(values.some((v) => v.value.includes("store 'broken' failed"))).toBe(true);
      expect(values.at(-1)!.stacktrace!.frames.length).toBeGreaterThan(0);
      const payload = event!.body;
      expect(payload).not.toContain(TEST_TOKEN);
      expect(payload).not.toContain('abc.def');
    } finally {
      await gw.close();
    }
  });

  it('sends nothing with dsn: null', async () => {
    received.length = 0;
    const gw = await startGateway({ sentry: { dsn: null }, stores: { broken: { type: 'fs', root: path.join(dir, 'file', 'sub') } } });
    try {
      expect((await fetch(`${gw.url}/broken/k`, { headers: AUTH })).status).toBe(502);
      await gw.gateway.errors.flush();
      await new Promise((r) => setTimeout(r, 100));
      expect(received).toEqual([]);
    } finally {
      await gw.close();
    }
  });

  it('refuses a malformed DSN at startup, naming the key', async () => {
    await expect(startGateway({ sentry: { dsn: 'http://127.0.0.1/x' }, stores: { a: { type: 'fs', root: dir } } })).rejects.toThrow(/sentry\.dsn/);
  });
});
