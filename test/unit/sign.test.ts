/**
 * The isomorphic signing helper against vectors made independently with node:crypto: the same
 * claims and seed give byte-identical tokens, base64url is strict and canonical, links are
 * percent-encoded per segment, and the helper itself imports nothing Node-only.
 */
import { createPrivateKey, createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  decodeBase64Url,
  encodeBase64Url,
  encodeObjectPath,
  generateKeypair,
  publicKeyFor,
  serializeClaims,
  signLink,
  signToken,
  type LinkClaims,
} from '../../src/sign/index.js';

interface Vectors {
  seed: string;
  publicKey: string;
  valid: { name: string; claims: LinkClaims; token: string }[];
}

const VECTORS = JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../fixtures/link-vectors.json'), 'utf8')) as Vectors;
const SIGN_DIR = path.resolve(import.meta.dirname, '../../src/sign');
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

const vector = (name: string) => {
  const v = VECTORS.valid.find((x) => x.name === name);
  if (!v) throw new Error(`no vector ${name}`);
  return v;
};

describe('signToken against the shared vectors', () => {
  it.each(VECTORS.valid.map((v) => [v.name, v] as const))('reproduces %s exactly', async (_name, v) => {
    expect(await signToken(v.claims, VECTORS.seed)).toBe(v.token);
    // The seed as raw bytes gives the same token.
    expect(await signToken(v.claims, Buffer.from(VECTORS.seed, 'base64url'))).toBe(v.token);
    // The payload is the claims' JSON, byte for byte.
    expect(Buffer.from(v.token.split('.')[0]!, 'base64url').toString('utf8')).toBe(serializeClaims(v.claims));
  });

  it('serialises in cachegate key order whatever order the claims object was built in', async () => {
    const v = vector('all-optional');
    const c = v.claims;
    // Same claims, keys inserted in reverse order.
    const shuffled = {
      rct: c.rct, rcd: c.rcd, ct: c.ct, max_len: c.max_len, len: c.len, nbf: c.nbf, kid: c.kid,
      p: c.p, b: c.b, m: c.m, exp: c.exp, v: c.v,
    } as LinkClaims;
    expect(serializeClaims(shuffled)).toBe(JSON.stringify(c));
    expect(await signToken(shuffled, VECTORS.seed)).toBe(v.token);
  });

  it('leaves out optional claims that are undefined', () => {
    const c: LinkClaims = { v: 1, exp: 10, m: 'GET', b: 'b', p: 'p', kid: undefined, len: undefined };
    expect(serializeClaims(c)).toBe('{"v":1,"exp":10,"m":"GET","b":"b","p":"p"}');
  });

  it('publicKeyFor(seed) matches the vectors’ public key', async () => {
    expect(await publicKeyFor(VECTORS.seed)).toBe(VECTORS.publicKey);
    expect(await publicKeyFor(Buffer.from(VECTORS.seed, 'base64url'))).toBe(VECTORS.publicKey);
  });

  it('refuses a key that is not 32 bytes of canonical base64url', async () => {
    const claims = vector('get').claims;
    await expect(signToken(claims, encodeBase64Url(new Uint8Array(31)))).rejects.toThrow(/32 bytes/);
    await expect(signToken(claims, `${VECTORS.seed}=`)).rejects.toThrow(/32 bytes/);
    await expect(publicKeyFor(new Uint8Array(33))).rejects.toThrow(/32 bytes/);
  });
});

describe('base64url', () => {
  it('round-trips every length 0..100 like Buffer’s base64url', () => {
    for (let n = 0; n <= 100; n++) {
      const bytes = randomBytes(n);
      const text = encodeBase64Url(bytes);
      expect(text).toBe(bytes.toString('base64url'));
      expect(Buffer.from(decodeBase64Url(text)!)).toEqual(bytes);
    }
  });

  it('encodes every byte value at every position in a 3-byte group', () => {
    for (let b = 0; b < 256; b++) {
      for (const bytes of [[b], [0, b], [0, 0, b], [b, 255, b]]) {
        expect(encodeBase64Url(Uint8Array.from(bytes))).toBe(Buffer.from(bytes).toString('base64url'));
      }
    }
  });

  it.each([
    ['padding', 'AA=='],
    ['single padding', 'AAA='],
    ['padding inside', 'AA==AAAA'],
    ["'+'", 'ab+d'],
    ["'/'", 'ab/d'],
    ['a leading space', ' AAA'],
    ['a trailing newline', 'AAAA\n'],
    ['an inner space', 'AA AA'],
    ['a tab', 'AA\tA'],
    ['length % 4 == 1 (1)', 'A'],
    ['length % 4 == 1 (5)', 'AAAAA'],
    ['length % 4 == 1 (9)', 'AAAAAAAAA'],
    ['a dot', 'AA.A'],
    ['non-ASCII', 'AAé'],
    ['a non-BMP character', 'AA\u{1F600}'],
    ['a NUL', 'AA\0A'],
  ])('rejects %s', (_what, text) => {
    expect(decodeBase64Url(text)).toBeUndefined();
  });

  it('accepts the empty string as zero bytes', () => {
    expect(decodeBase64Url('')).toEqual(new Uint8Array(0));
  });

  it('one byte in two characters: the low 4 bits of the second must be zero', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    for (let v = 0; v < 64; v++) {
      const text = `A${alphabet[v]}`;
      const got = decodeBase64Url(text);
      if ((v & 0b1111) === 0) expect(Buffer.from(got!)).toEqual(Buffer.from(text, 'base64url'));
      else expect(got, text).toBeUndefined();
    }
    expect(Buffer.from(decodeBase64Url('AQ')!)).toEqual(Buffer.from([1]));
    expect(decodeBase64Url('AB')).toBeUndefined();
    expect(decodeBase64Url('AC')).toBeUndefined();
    expect(decodeBase64Url('_w')).toEqual(Uint8Array.from([255]));
    expect(decodeBase64Url('_x')).toBeUndefined();
  });

  it('two bytes in three characters: the low 2 bits of the third must be zero', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    for (let v = 0; v < 64; v++) {
      const text = `AA${alphabet[v]}`;
      const got = decodeBase64Url(text);
      if ((v & 0b11) === 0) expect(Buffer.from(got!)).toEqual(Buffer.from(text, 'base64url'));
      else expect(got, text).toBeUndefined();
    }
  });

  it('decodes long inputs correctly (no accumulator overflow)', () => {
    const bytes = randomBytes(4096);
    expect(Buffer.from(decodeBase64Url(bytes.toString('base64url'))!)).toEqual(bytes);
  });
});

describe('signLink', () => {
  const seed = VECTORS.seed;

  it('builds <base>/<bucket>/<encoded path>?sig=<token> with segments percent-encoded and slashes kept', async () => {
    const v = vector('unicode-path');
    const link = await signLink({ baseUrl: 'https://cdn.example.com', bucket: 'media', path: v.claims.p, exp: v.claims.exp, privateKey: seed });
    expect(link).toBe(`https://cdn.example.com/media/dir/caf%C3%A9%20%E6%97%A5%E6%9C%AC.mp4?sig=${v.token}`);
  });

  it('keeps a base path prefix, drops trailing slashes on the base and leading slashes on the path', async () => {
    const v = vector('get');
    const link = await signLink({ baseUrl: 'http://h:8080/gw//', bucket: 'media', path: '//a/b.txt', exp: v.claims.exp, privateKey: seed });
    expect(link).toBe(`http://h:8080/gw/media/a/b.txt?sig=${v.token}`);
  });

  it('encodes characters that would end or break a path segment', async () => {
    const link = await signLink({ baseUrl: 'http://h', bucket: 'b', path: 'q?x#y%z/50% off&more+plus;semi', exp: 1, privateKey: seed });
    const url = new URL(link);
    expect(url.pathname).toBe('/b/q%3Fx%23y%25z/50%25%20off%26more%2Bplus%3Bsemi');
    expect(url.hash).toBe('');
    expect([...url.searchParams.keys()]).toEqual(['sig']);
    const claims = JSON.parse(Buffer.from(url.searchParams.get('sig')!.split('.')[0]!, 'base64url').toString('utf8')) as LinkClaims;
    expect(claims.p).toBe('q?x#y%z/50% off&more+plus;semi');
    expect(encodeObjectPath('a b/c')).toBe('a%20b/c');
  });

  it('fills exp from now + expiresIn (default 3600 s), method GET by default, and optional claims in order', async () => {
    const now = 1_700_000_000;
    const decode = (link: string) =>
      Buffer.from(new URL(link).searchParams.get('sig')!.split('.')[0]!, 'base64url').toString('utf8');
    const base = { baseUrl: 'http://h', bucket: 'b', path: 'k', privateKey: seed, now };
    expect(decode(await signLink(base))).toBe(`{"v":1,"exp":${now + 3600},"m":"GET","b":"b","p":"k"}`);
    expect(decode(await signLink({ ...base, expiresIn: 60, method: 'HEAD' }))).toBe(`{"v":1,"exp":${now + 60},"m":"HEAD","b":"b","p":"k"}`);
    expect(decode(await signLink({ ...base, exp: 5, expiresIn: 60, method: 'PUT', ct: 'text/plain', len: 3, kid: 'k1' }))).toBe(
      '{"v":1,"exp":5,"m":"PUT","b":"b","p":"k","kid":"k1","len":3,"ct":"text/plain"}',
    );
  });

  it('its token verifies with node:crypto against the public key', async () => {
    const link = await signLink({ baseUrl: 'http://h', bucket: 'b', path: 'x/y', privateKey: seed });
    const [payload, signature] = new URL(link).searchParams.get('sig')!.split('.') as [string, string];
    const pub = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: VECTORS.publicKey }, format: 'jwk' });
    expect(verify(null, Buffer.from(payload, 'base64url'), pub, Buffer.from(signature, 'base64url'))).toBe(true);
  });
});

describe('generateKeypair', () => {
  it('gives a 32-byte seed and its public key, which node:crypto agrees on', async () => {
    const a = await generateKeypair();
    const b = await generateKeypair();
    expect(a.privateKey).not.toBe(b.privateKey);
    for (const key of [a.publicKey, a.privateKey]) {
      expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(decodeBase64Url(key)).toHaveLength(32);
    }
    const priv = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, Buffer.from(a.privateKey, 'base64url')]), format: 'der', type: 'pkcs8' });
    expect(createPublicKey(priv).export({ format: 'jwk' }).x).toBe(a.publicKey);
    const msg = Buffer.from('hello');
    const pub = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: a.publicKey }, format: 'jwk' });
    expect(verify(null, msg, pub, sign(null, msg, priv))).toBe(true);
    expect(await publicKeyFor(a.privateKey)).toBe(a.publicKey);
  });
});

describe('no Node-only dependency', () => {
  const files = readdirSync(SIGN_DIR).filter((f) => f.endsWith('.ts'));

  it('src/sign has the helper files', () => {
    expect(files).toEqual(expect.arrayContaining(['index.ts', 'base64url.ts']));
  });

  it.each(files)('src/sign/%s imports only relative modules and @noble/ed25519, and uses no Node globals', (file) => {
    const text = readFileSync(path.join(SIGN_DIR, file), 'utf8');
    expect(text).not.toMatch(/from\s+['"]node:/);
    expect(text).not.toMatch(/(?:import|require)\s*\(\s*['"]node:/);
    // Code, not comments (the JSDoc shows an example import): strip them first.
    const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
    const specifiers = [...code.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)].map((m) => m[1]!);
    if (file === 'index.ts') expect(specifiers).toContain('@noble/ed25519'); // the scan does see imports
    for (const s of specifiers) expect(s.startsWith('./') || s === '@noble/ed25519', s).toBe(true);
    expect(code).not.toMatch(/\b(?:Buffer|process|require)\b/);
  });
});
