/**
 * The lean S3 read path's requests carry valid SigV4 signatures, end to end. s3rver checks only
 * the access key id of a SigV4 request (its signature check is unimplemented), so the requests
 * go through a proxy that recomputes each signature with the SDK's own signer from what arrived
 * on the wire (`test/helpers/sigv4-proxy.ts`).
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreError } from '../../src/errors.js';
import { createS3Store } from '../../src/stores/s3.js';
import type { ObjectStore } from '../../src/stores/types.js';
import { createTestS3Client, s3StoreConfig, startS3rver, type S3rverInstance } from '../helpers/s3rver.js';
import { startSigV4CheckingProxy, type SigV4CheckingProxy } from '../helpers/sigv4-proxy.js';

describe('SigV4 of the S3 read path, checked on the wire', () => {
  let srv: S3rverInstance;
  let proxy: SigV4CheckingProxy;
  const KEYS = ['plain/object.bin', 'with space/ü+&=?.bin'];
  const body = Buffer.from('signed reads, checked by the SDK signer on the way in');

  beforeAll(async () => {
    srv = await startS3rver({ buckets: ['sig'] });
    const client = createTestS3Client(srv);
    for (const key of KEYS) await client.send(new PutObjectCommand({ Bucket: 'sig', Key: key, Body: body }));
    client.destroy();
    proxy = await startSigV4CheckingProxy(srv);
  });
  afterAll(async () => {
    await proxy?.stop();
    await srv?.stop();
  });

  const store = (secret: string): ObjectStore => createS3Store('sig', { ...s3StoreConfig({ ...srv, endpoint: proxy.endpoint }, 'sig', 4), secret_key: secret } as never);

  async function text(s: ObjectStore, key: string, opts: Parameters<ObjectStore['get']>[1] = {}): Promise<string> {
    const r = await s.get(key, opts);
    const chunks: Buffer[] = [];
    for await (const c of r!.body as AsyncIterable<Buffer>) chunks.push(c);
    return Buffer.concat(chunks).toString();
  }

  it('HEAD, GET, ranged and conditional GETs and revalidation all verify', async () => {
    const s = store(srv.secretAccessKey);
    const before = { ...proxy.seen };
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
    expect(proxy.seen.refused).toBe(before.refused);
    expect(proxy.seen.verified - before.verified).toBe(KEYS.length * 5);
  });

  it('a wrong secret is refused by the checking proxy: the check is real', async () => {
    const s = store('not-the-secret');
    const before = { ...proxy.seen };
    try {
      const err = await s.get(KEYS[0]!).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).kind).toBe('access_denied');
    } finally {
      await s.close();
    }
    expect(proxy.seen.refused - before.refused).toBe(1);
  });
});
