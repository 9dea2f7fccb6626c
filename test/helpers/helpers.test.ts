import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { Readable } from 'node:stream';

import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { BlobServiceClient } from '@azure/storage-blob';
import { describe, expect, it } from 'vitest';

import { startAzurite } from './azurite.js';
import { freePort } from './free-port.js';
import { createTestS3Client, startS3rver } from './s3rver.js';

const payloads: ReadonlyArray<[key: string, body: Buffer]> = [
  ['dir/large.bin', randomBytes(1024 * 1024)],
  ['small.txt', Buffer.from('hello, cachegate \u2603\n', 'utf8')],
  ['empty', Buffer.alloc(0)],
];

describe('test helpers', () => {
  it('freePort returns a usable port', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(port).toBeLessThan(65536);
  });

  it('s3rver round-trips bytes exactly and cleans up', async () => {
    const srv = await startS3rver({ buckets: ['test-bucket'] });
    const client = createTestS3Client(srv);
    try {
      expect(srv.endpoint).toBe(`http://127.0.0.1:${srv.port}`);
      for (const [key, body] of payloads) {
        await client.send(new PutObjectCommand({ Bucket: 'test-bucket', Key: key, Body: body }));
        const res = await client.send(new GetObjectCommand({ Bucket: 'test-bucket', Key: key }));
        const got = Buffer.from(await res.Body!.transformToByteArray());
        expect(got.length).toBe(body.length);
        expect(got.equals(body)).toBe(true);
      }

      // Streaming bodies are where the SDK's default aws-chunked + CRC32 trailer
      // framing kicks in; createTestS3Client must disable it for s3rver.
      const [, large] = payloads[0]!;
      await client.send(
        new PutObjectCommand({
          Bucket: 'test-bucket',
          Key: 'streamed.bin',
          Body: Readable.from([large.subarray(0, 1000), large.subarray(1000)]),
          ContentLength: large.length,
        }),
      );
      const res = await client.send(new GetObjectCommand({ Bucket: 'test-bucket', Key: 'streamed.bin' }));
      expect(Buffer.from(await res.Body!.transformToByteArray()).equals(large)).toBe(true);
    } finally {
      client.destroy();
      await srv.stop();
    }
    expect(existsSync(srv.directory)).toBe(false);
    await srv.stop(); // idempotent
  });

  it('azurite round-trips bytes exactly and cleans up', async () => {
    const az = await startAzurite({ containers: ['test-container'] });
    try {
      expect(az.blobEndpoint).toBe(`http://127.0.0.1:${az.port}/devstoreaccount1`);
      const container = BlobServiceClient.fromConnectionString(az.connectionString)
        .getContainerClient('test-container');
      expect(await container.exists()).toBe(true);
      for (const [key, body] of payloads) {
        const blob = container.getBlockBlobClient(key);
        await blob.uploadData(body);
        const got = await blob.downloadToBuffer();
        expect(got.length).toBe(body.length);
        expect(got.equals(body)).toBe(true);
      }
    } finally {
      await az.stop();
    }
    expect(existsSync(az.directory)).toBe(false);
    await az.stop(); // idempotent
  }, 30_000);
});
