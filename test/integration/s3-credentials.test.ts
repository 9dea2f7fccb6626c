/**
 * S3 with no `access_key` in the config takes credentials from the AWS SDK's default provider
 * chain, here from the environment, and they reach s3rver through the lean read path: HEAD,
 * GET and ranged GET. s3rver checks only the access key id of a SigV4 request, so the reads go
 * through a proxy that verifies each signature against s3rver's secret (sigv4-proxy.ts): the
 * environment's secret signed them.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { StoreError } from '../../src/errors.js';
import { createS3Store } from '../../src/stores/s3.js';
import { createTestS3Client, startS3rver, type S3rverInstance } from '../helpers/s3rver.js';
import { startSigV4CheckingProxy, type SigV4CheckingProxy } from '../helpers/sigv4-proxy.js';

const ENV_KEYS = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE'] as const;

describe('S3 credentials from the default chain', () => {
  let srv: S3rverInstance;
  let proxy: SigV4CheckingProxy;
  const saved = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
  const body = Buffer.from('read with credentials from the environment');

  beforeAll(async () => {
    srv = await startS3rver({ buckets: ['creds'] });
    const client = createTestS3Client(srv);
    await client.send(new PutObjectCommand({ Bucket: 'creds', Key: 'env/object.txt', Body: body }));
    client.destroy();
    proxy = await startSigV4CheckingProxy(srv);
  });
  afterEach(() => {
    for (const k of ENV_KEYS) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });
  afterAll(async () => {
    await proxy?.stop();
    await srv?.stop();
  });

  const storeWithoutKeys = () =>
    createS3Store('creds', { type: 's3', bucket: 'creds', region: srv.region, endpoint: proxy.endpoint, allow_http: true, max_sockets: 4 } as never);

  it('reads with the environment credentials when the config has none', async () => {
    delete process.env.AWS_PROFILE;
    delete process.env.AWS_SESSION_TOKEN;
    process.env.AWS_ACCESS_KEY_ID = srv.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = srv.secretAccessKey;
    const store = storeWithoutKeys();
    const before = { ...proxy.seen };
    try {
      expect((await store.head('env/object.txt'))?.size).toBe(body.length);
      const whole = await store.get('env/object.txt');
      const chunks: Buffer[] = [];
      for await (const c of whole!.body as AsyncIterable<Buffer>) chunks.push(c);
      expect(Buffer.concat(chunks).equals(body)).toBe(true);
      const ranged = await store.get('env/object.txt', { range: { start: 5, end: 8 } });
      const part: Buffer[] = [];
      for await (const c of ranged!.body as AsyncIterable<Buffer>) part.push(c);
      expect(Buffer.concat(part).toString()).toBe(body.subarray(5, 9).toString());
    } finally {
      await store.close();
    }
    expect(proxy.seen.verified - before.verified).toBe(3);
    expect(proxy.seen.refused).toBe(before.refused);
  });

  it('is refused when the environment holds the right key id with another secret', async () => {
    delete process.env.AWS_PROFILE;
    delete process.env.AWS_SESSION_TOKEN;
    process.env.AWS_ACCESS_KEY_ID = srv.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = 'not-the-secret';
    const store = storeWithoutKeys();
    const before = { ...proxy.seen };
    try {
      const err = await store.head('env/object.txt').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreError);
    } finally {
      await store.close();
    }
    expect(proxy.seen.refused - before.refused).toBe(1);
  });

  it('is refused by the store when the environment holds other credentials', async () => {
    delete process.env.AWS_PROFILE;
    process.env.AWS_ACCESS_KEY_ID = 'NOT-S3RVER';
    process.env.AWS_SECRET_ACCESS_KEY = 'wrong-secret';
    const store = storeWithoutKeys();
    try {
      const err = await store.get('env/object.txt').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).kind).toBe('access_denied');
    } finally {
      await store.close();
    }
  });
});
