/**
 * The lean read paths' pool (stores/http-read.ts) keeps its connections: HEADs and GETs in turn
 * travel on one socket (undici would close the socket after every HEAD unless told not to), and
 * an error body is read bounded into its XML code and message.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReadPool, readErrorBody } from '../../src/stores/http-read.js';

describe('ReadPool', () => {
  let server: Server;
  let origin: string;
  let connections = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
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
