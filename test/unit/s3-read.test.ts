/**
 * The lean S3 read path builds its requests right: the endpoint (virtual-host style on AWS,
 * path style for S3-compatible endpoints and names that cannot be hosts), the key's encoding,
 * and a SigV4 signature checked here against an independent implementation on node:crypto.
 */
import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodeS3Key, resolveS3ReadTarget, S3Reader } from '../../src/stores/s3-read.js';

const CREDS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };

/** SigV4 of a body-less request (AWS's documented algorithm), independent of the SDK. */
function expectedAuthorization(method: string, path: string, headers: Record<string, string>, region: string): string {
  const amzDate = headers['x-amz-date']!;
  const day = amzDate.slice(0, 8);
  const names = Object.keys(headers)
    .map((n) => n.toLowerCase())
    .filter((n) => n !== 'authorization')
    .sort();
  const canonicalHeaders = names.map((n) => `${n}:${headers[n]!.trim()}\n`).join('');
  const signedHeaders = names.join(';');
  const canonical = [method, path, '', canonicalHeaders, signedHeaders, 'UNSIGNED-PAYLOAD'].join('\n');
  const scope = `${day}/${region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  let key: Buffer = Buffer.from(`AWS4${CREDS.secretAccessKey}`);
  for (const part of [day, region, 's3', 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  return `AWS4-HMAC-SHA256 Credential=${CREDS.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
}

describe('resolveS3ReadTarget', () => {
  it('uses virtual-host addressing on AWS when no endpoint is set', () => {
    expect(resolveS3ReadTarget('media-bucket', 'eu-west-1', undefined, undefined)).toEqual({
      origin: 'https://media-bucket.s3.eu-west-1.amazonaws.com',
      host: 'media-bucket.s3.eu-west-1.amazonaws.com',
      protocol: 'https:',
      port: undefined,
      basePath: '',
    });
  });

  it('falls back to path style for names that cannot be a TLS host, or when forced', () => {
    expect(resolveS3ReadTarget('my.dotted.bucket', 'us-east-1', undefined, undefined)).toMatchObject({
      host: 's3.us-east-1.amazonaws.com',
      basePath: '/my.dotted.bucket',
    });
    expect(resolveS3ReadTarget('media', 'us-east-1', undefined, true)).toMatchObject({ host: 's3.us-east-1.amazonaws.com', basePath: '/media' });
  });

  it('uses path style on an S3-compatible endpoint unless told otherwise', () => {
    expect(resolveS3ReadTarget('media', 'us-east-1', 'http://127.0.0.1:9000', true)).toEqual({
      origin: 'http://127.0.0.1:9000',
      host: '127.0.0.1:9000',
      protocol: 'http:',
      port: 9000,
      basePath: '/media',
    });
    expect(resolveS3ReadTarget('media', 'auto', 'https://acct.r2.example', false)).toMatchObject({ host: 'media.acct.r2.example', basePath: '' });
  });
});

describe('encodeS3Key', () => {
  it.each([
    ['a/b.mp4', 'a/b.mp4'],
    ['with space/ü.bin', 'with%20space/%C3%BC.bin'],
    ["x!'()*+=&%#?.txt", 'x%21%27%28%29%2A%2B%3D%26%25%23%3F.txt'],
    ['~_-.', '~_-.'],
  ])('%s -> %s', (key, encoded) => {
    expect(encodeS3Key(key)).toBe(encoded);
  });
});

describe('S3Reader.sign', () => {
  it('signs a virtual-host GET with a range exactly as SigV4 prescribes', async () => {
    const reader = new S3Reader({
      target: resolveS3ReadTarget('media-bucket', 'eu-west-1', undefined, undefined),
      region: 'eu-west-1',
      credentials: CREDS,
      maxSockets: 1,
      connectTimeoutMs: 1000,
    });
    try {
      const { path, headers } = await reader.sign({ method: 'GET', key: 'videos/a b.mp4', range: { start: 0, end: 1023 } });
      expect(path).toBe('/videos/a%20b.mp4');
      expect(headers.host).toBe('media-bucket.s3.eu-west-1.amazonaws.com');
      expect(headers.range).toBe('bytes=0-1023');
      expect(headers['x-amz-content-sha256']).toBe('UNSIGNED-PAYLOAD');
      expect(headers.authorization).toBe(expectedAuthorization('GET', path, headers, 'eu-west-1'));
    } finally {
      await reader.close();
    }
  });

  it('carries a session token from temporary credentials', async () => {
    const reader = new S3Reader({
      target: resolveS3ReadTarget('media', 'us-east-1', 'http://127.0.0.1:9', true),
      region: 'us-east-1',
      credentials: async () => ({ ...CREDS, sessionToken: 'token-from-the-chain' }),
      maxSockets: 1,
      connectTimeoutMs: 1000,
    });
    try {
      const { path, headers } = await reader.sign({ method: 'HEAD', key: 'k' });
      expect(path).toBe('/media/k');
      expect(headers['x-amz-security-token']).toBe('token-from-the-chain');
      expect(headers.authorization).toBe(expectedAuthorization('HEAD', path, headers, 'us-east-1'));
    } finally {
      await reader.close();
    }
  });
});
