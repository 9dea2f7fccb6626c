/**
 * The lean S3 read path builds its requests right: the endpoint (virtual-host style on AWS,
 * path style for S3-compatible endpoints and names that cannot be hosts), the key's encoding,
 * and a SigV4 signature checked against an independent implementation on node:crypto and
 * against the SDK's own signer (`@smithy/signature-v4`).
 */
import { createHash, createHmac } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CREDENTIALS_REFRESH_MS, encodeS3Key, resolveS3ReadTarget, S3Reader, type S3Credentials } from '../../src/stores/s3-read.js';
import { ReadSigner, type ReadSignable } from '../../src/stores/sigv4.js';
import { sdkSignedHeaders } from '../helpers/sigv4-proxy.js';

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

describe('S3Reader credentials', () => {
  afterEach(() => vi.useRealTimers());

  it("asks the provider again only when its credentials are within the SDK's refresh window", async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-12-04T12:00:00Z'));
    const expiring = (n: number, inMs: number): S3Credentials => ({ accessKeyId: `ASIA${n}`, secretAccessKey: 's', sessionToken: `t${n}`, expiration: new Date(Date.now() + inMs) });
    let calls = 0;
    const answers = [expiring(1, CREDENTIALS_REFRESH_MS + 60_000), expiring(2, 3_600_000)];
    const reader = new S3Reader({
      target: resolveS3ReadTarget('media', 'us-east-1', 'http://127.0.0.1:9', true),
      region: 'us-east-1',
      credentials: async () => answers[Math.min(calls++, answers.length - 1)]!,
      maxSockets: 1,
      connectTimeoutMs: 1000,
    });
    try {
      const token = async () => (await reader.sign({ method: 'HEAD', key: 'k' })).headers['x-amz-security-token'];
      expect(await token()).toBe('t1');
      expect(await token()).toBe('t1');
      expect(calls).toBe(1);
      // A minute later the first set is due for a refresh: the provider is asked, its new set used.
      vi.setSystemTime(new Date(Date.now() + 60_000));
      expect(await token()).toBe('t2');
      expect(await token()).toBe('t2');
      expect(calls).toBe(2);
    } finally {
      await reader.close();
    }
  });

  it('resolves static credentials once', async () => {
    let calls = 0;
    const reader = new S3Reader({
      target: resolveS3ReadTarget('media', 'us-east-1', 'http://127.0.0.1:9', true),
      region: 'us-east-1',
      credentials: async () => (calls++, CREDS),
      maxSockets: 1,
      connectTimeoutMs: 1000,
    });
    try {
      for (let i = 0; i < 3; i++) await reader.sign({ method: 'GET', key: 'k' });
      expect(calls).toBe(1);
    } finally {
      await reader.close();
    }
  });
});

describe('S3Reader.sign conditions', () => {
  it('sends and signs If-Match and If-None-Match when given, and no empty condition', async () => {
    const reader = new S3Reader({
      target: resolveS3ReadTarget('media', 'us-east-1', 'http://127.0.0.1:9', true),
      region: 'us-east-1',
      credentials: CREDS,
      maxSockets: 1,
      connectTimeoutMs: 1000,
    });
    try {
      const given = await reader.sign({ method: 'GET', key: 'k', ifMatch: '"v1"', ifNoneMatch: '"v0"' });
      expect(given.headers['if-match']).toBe('"v1"');
      expect(given.headers['if-none-match']).toBe('"v0"');
      expect(given.headers.authorization).toBe(expectedAuthorization('GET', given.path, given.headers, 'us-east-1'));
      const empty = await reader.sign({ method: 'GET', key: 'k', ifMatch: '', ifNoneMatch: '' });
      expect(Object.keys(empty.headers).sort()).toEqual(['authorization', 'host', 'x-amz-content-sha256', 'x-amz-date']);
    } finally {
      await reader.close();
    }
  });
});

describe('ReadSigner', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** What the SDK's signer makes of the same read at the same instant. */
  function smithySigned(req: ReadSignable, creds: S3Credentials, region: string, at: Date): Promise<Record<string, string>> {
    const headers: Record<string, string> = { host: req.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' };
    if (req.range !== undefined) headers.range = req.range;
    if (req.ifMatch !== undefined) headers['if-match'] = req.ifMatch;
    if (req.ifNoneMatch !== undefined) headers['if-none-match'] = req.ifNoneMatch;
    return sdkSignedHeaders({ method: req.method, path: req.path, headers }, creds, region, at);
  }

  const READS: [string, ReadSignable, S3Credentials][] = [
    ['a path-style GET to an endpoint with a port', { method: 'GET', path: '/media/a/b.mp4', host: '127.0.0.1:9000' }, CREDS],
    [
      'a virtual-host ranged GET conditional on an ETag',
      { method: 'GET', path: '/videos/a%20b.mp4', host: 'media.s3.eu-west-1.amazonaws.com', range: 'bytes=8388608-16777215', ifMatch: '"9b2cf535f27731c974343645a3985328"' },
      CREDS,
    ],
    [
      'a revalidating HEAD with temporary credentials',
      { method: 'HEAD', path: '/media/k', host: 's3.us-east-1.amazonaws.com', ifNoneMatch: 'W/"1000-18c"' },
      { ...CREDS, sessionToken: 'FwoGZXIvYXdzEJr//////////token' },
    ],
    ['a key that needed escaping', { method: 'GET', path: '/media/x%21%27%28%29%2A%2B%3D%26%25%23%3F.txt', host: 'minio.local:9000' }, CREDS],
  ];

  it.each(READS)('signs %s exactly as the SDK signer does', async (_name, req, creds) => {
    const at = new Date('2026-12-03T15:39:07.250Z');
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(at);
    const region = req.host.includes('eu-west-1') ? 'eu-west-1' : 'us-east-1';
    const ours = new ReadSigner('s3', region).sign(req, creds);
    expect(ours).toEqual(await smithySigned(req, creds, region, at));
  });

  it('derives a new signing key when the day turns or the credentials are refreshed', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const signer = new ReadSigner('s3', 'us-east-1');
    const req: ReadSignable = { method: 'GET', path: '/media/k', host: '127.0.0.1:9000' };
    const refreshed = { accessKeyId: 'ASIAREFRESHED', secretAccessKey: 'a-new-secret', sessionToken: 'new-token' };
    const steps: [string, S3Credentials][] = [
      ['2026-12-03T23:59:59.900Z', CREDS],
      ['2026-12-04T00:00:00.100Z', CREDS],
      ['2026-12-04T00:00:00.700Z', refreshed],
      ['2026-12-04T00:00:01.000Z', { ...CREDS }],
    ];
    const signatures = new Set<string>();
    for (const [iso, creds] of steps) {
      const at = new Date(iso);
      vi.setSystemTime(at);
      const ours = signer.sign(req, creds);
      expect(ours).toEqual(await smithySigned(req, creds, 'us-east-1', at));
      signatures.add(ours.authorization!);
    }
    expect(signatures.size).toBe(steps.length);
  });
});
