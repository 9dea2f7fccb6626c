/**
 * The lean S3 read path's requests carry valid SigV4 signatures, end to end. s3rver checks only
 * the access key id of a SigV4 request (its signature check is unimplemented), so here a proxy
 * in front of it recomputes every request's signature with the SDK's own signer
 * (`@smithy/signature-v4`) from what actually arrived on the wire, and refuses a mismatch with
 * 403 SignatureDoesNotMatch, as S3 does.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreError } from '../../src/errors.js';
import { createS3Store } from '../../src/stores/s3.js';
import type { ObjectStore } from '../../src/stores/types.js';
import { createTestS3Client, s3StoreConfig, startS3rver, type S3rverInstance } from '../helpers/s3rver.js';

const AUTH_RE = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/;

/** `20261203T153907Z` as a Date. */
function amzDate(v: string): Date {
  return new Date(`${v.slice(0, 4)}-${v.slice(4, 6)}-${v.slice(6, 8)}T${v.slice(9, 11)}:${v.slice(11, 13)}:${v.slice(13, 15)}Z`);
}

/** Whether a request as received is signed right for `secret`, by the SDK's signer. */
async function signatureHolds(req: http.IncomingMessage, secret: string): Promise<boolean> {
  const m = AUTH_RE.exec(String(req.headers.authorization ?? ''));
  const date = req.headers['x-amz-date'];
  if (!m || typeof date !== 'string') return false;
  const [, accessKeyId, , region, signedHeaders] = m;
  const headers: Record<string, string> = {};
  for (const name of signedHeaders!.split(';')) {
    const v = req.headers[name];
    if (typeof v !== 'string') return false;
    headers[name] = v;
  }
  const signer = new SignatureV4({ service: 's3', region: region!, credentials: { accessKeyId: accessKeyId!, secretAccessKey: secret }, sha256: Hash.bind(null, 'sha256'), uriEscapePath: false, applyChecksum: false });
  const [hostname, port] = headers.host!.split(':');
  const signed = await signer.sign(
    { protocol: 'http:', hostname: hostname!, ...(port ? { port: Number(port) } : {}), method: req.method!, path: req.url!, query: {}, headers },
    { signingDate: amzDate(date) },
  );
  return signed.headers.authorization === req.headers.authorization;
}

describe('SigV4 of the S3 read path, checked on the wire', () => {
  let srv: S3rverInstance;
  let proxy: http.Server;
  let endpoint: string;
  const seen = { verified: 0, refused: 0 };
  const KEYS = ['plain/object.bin', 'with space/ü+&=?.bin'];
  const body = Buffer.from('signed reads, checked by the SDK signer on the way in');

  beforeAll(async () => {
    srv = await startS3rver({ buckets: ['sig'] });
    const client = createTestS3Client(srv);
    for (const key of KEYS) await client.send(new PutObjectCommand({ Bucket: 'sig', Key: key, Body: body }));
    client.destroy();
    const upstream = new URL(srv.endpoint);
    const agent = new http.Agent({ keepAlive: true });
    proxy = http.createServer((req, res) => {
      void signatureHolds(req, srv.secretAccessKey).then((ok) => {
        if (!ok) {
          seen.refused++;
          req.resume();
          res.writeHead(403, { 'content-type': 'application/xml' }).end('<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error>');
          return;
        }
        seen.verified++;
        const out = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent }, (up) => {
          res.writeHead(up.statusCode!, up.headers);
          up.pipe(res);
        });
        out.on('error', () => res.destroy());
        req.pipe(out);
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    proxy?.closeAllConnections();
    await new Promise((r) => proxy?.close(r));
    await srv?.stop();
  });

  const store = (secret: string): ObjectStore => createS3Store('sig', { ...s3StoreConfig({ ...srv, endpoint }, 'sig', 4), secret_key: secret } as never);

  async function text(s: ObjectStore, key: string, opts: Parameters<ObjectStore['get']>[1] = {}): Promise<string> {
    const r = await s.get(key, opts);
    const chunks: Buffer[] = [];
    for await (const c of r!.body as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks).toString();
  }

  it('HEAD, GET, ranged and conditional GETs and revalidation all verify', async () => {
    const s = store(srv.secretAccessKey);
    const before = { ...seen };
    try {
      for (const key of KEYS) {
        const meta = await s.head(key);
        expect(meta?.size).toBe(body.length);
        expect(await text(s, key)).toBe(body.toString());
        expect(await text(s, key, { range: { start: 7, end: 11 } })).toBe(body.subarray(7, 12).toString());
        expect(await text(s, key, { range: { start: 0, end: 5 }, ifMatch: meta!.etag })).toBe(body.subarray(0, 6).toString());
        expect((await s.revalidate(key, meta!.etag!)).kind).toBe('not_modified');
      }
    } finally {
      await s.close();
    }
    expect(seen.refused).toBe(before.refused);
    expect(seen.verified - before.verified).toBe(KEYS.length * 5);
  });

  it('a wrong secret is refused by the checking proxy: the check is real', async () => {
    const s = store('not-the-secret');
    const before = { ...seen };
    try {
      const err = await s.get(KEYS[0]!).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).kind).toBe('access_denied');
    } finally {
      await s.close();
    }
    expect(seen.refused - before.refused).toBe(1);
  });
});
