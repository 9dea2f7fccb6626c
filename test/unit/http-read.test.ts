/**
 * The lean read paths' pool (stores/http-read.ts) keeps its connections: HEADs and GETs in turn
 * travel on one socket (undici would close the socket after every HEAD unless told not to), and
 * an error body is read bounded into its XML code and message. A store call's CallSignal (the
 * deadline's, core/deadline.ts) stops undici's request both before the answer and in its body.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallSignal } from '../../src/core/deadline.js';
import { ReadPool, readErrorBody } from '../../src/stores/http-read.js';

describe('ReadPool', () => {
  let server: Server;
  let origin: string;
  let connections = 0;
  /** Requests to /stall and /trickle whose connection is still open. */
  const open = new Set<string>();
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/stall' || req.url === '/trickle') {
        open.add(req.url);
        res.on('close', () => open.delete(req.url!));
        // /stall never answers; /trickle answers and sends the first bytes of a longer body.
        if (req.url === '/trickle') {
          res.writeHead(200, { 'content-length': '10' });
          res.write('hello');
        }
        return;
      }
      if (req.url === '/missing') {
        res.writeHead(404, { 'content-type': 'application/xml' });
        return res.end(`<?xml version="1.0"?><Error><Code>BlobNotFound</Code><Message>gone</Message>${'x'.repeat(64 * 1024)}</Error>`);
      }
      res.writeHead(200, { 'content-length': '5', etag: '"e"' });
      res.end(req.method === 'HEAD' ? undefined : 'hello');
    });
    server.on('connection', () => connections++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('sends HEADs and GETs one after another on one connection', async () => {
    const pool = new ReadPool(origin, { connections: 1, connectTimeoutMs: 1000 });
    try {
      connections = 0;
      for (let i = 0; i < 5; i++) {
        const head = await pool.request({ method: 'HEAD', path: '/k', headers: {} });
        head.body.resume();
        expect(head.status).toBe(200);
        const get = await pool.request({ method: 'GET', path: '/k', headers: {} });
        expect(Buffer.concat(await get.body.toArray()).toString()).toBe('hello');
      }
      expect(connections).toBe(1);
    } finally {
      await pool.close();
    }
  });

  it('stops a request when its CallSignal aborts, before the answer and in the body', async () => {
    const pool = new ReadPool(origin, { connections: 2, connectTimeoutMs: 1000 });
    try {
      const before = new CallSignal();
      const stalled = pool.request({ method: 'GET', path: '/stall', headers: {}, signal: before });
      await until(() => open.has('/stall'));
      const reason = new Error('deadline');
      before.abort(reason);
      await expect(stalled).rejects.toBe(reason);
      await until(() => !open.has('/stall'));

      const during = new CallSignal();
      const res = await pool.request({ method: 'GET', path: '/trickle', headers: {}, signal: during });
      const body = res.body.toArray();
      during.abort(reason);
      await expect(body).rejects.toBe(reason);
      await until(() => !open.has('/trickle'));
    } finally {
      await pool.close();
    }
  });

  it("reads an error answer's code and message and consumes its body", async () => {
    const pool = new ReadPool(origin, { connections: 1, connectTimeoutMs: 1000 });
    try {
      const res = await pool.request({ method: 'GET', path: '/missing', headers: {} });
      expect(await readErrorBody(res)).toEqual({ code: 'BlobNotFound', message: 'gone' });
      expect(res.body.readableEnded).toBe(true);
    } finally {
      await pool.close();
    }
  });
});

/** Wait for `cond`, polling (bounded: the test fails rather than hangs). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond()).toBe(true);
}
