/**
 * Link payloads that two JSON readers could read differently are refused (issue 11): repeated
 * member names, however escaped, and methods not written exactly as a link may name them.
 */
import { generateKeyPairSync, sign as edSign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hasDuplicateName, verifyTokenSignature } from '../../src/auth/token.js';
import { GatewayError } from '../../src/errors.js';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const keys = [{ id: 'k', publicKey, privateKey: undefined }];

function token(payloadText: string): string {
  const payload = Buffer.from(payloadText);
  return `${payload.toString('base64url')}.${edSign(null, payload, privateKey).toString('base64url')}`;
}

describe('hasDuplicateName', () => {
  it.each([
    ['{"p":"x","p":"a/b"}', true],
    ['{"p":"x","\\u0070":"a/b"}', true],
    ['{"a":{"b":1,"b":2}}', true],
    ['{"a":[{"b":1},{"b":2}],"c":"\\"b\\":"}', false],
    ['{"a":"p","p":"a"}', false],
    ['{"v":1,"exp":2,"m":"GET","b":"media","p":"a/b"}', false],
    ['{"s":"{\\"p\\":1,\\"p\\":2}"}', false],
  ])('%s -> %s', (text, expected) => {
    JSON.parse(text); // only ever called on valid JSON
    expect(hasDuplicateName(text)).toBe(expected);
  });
});

describe('verifyTokenSignature', () => {
  const exp = Math.floor(Date.now() / 1000) + 600;

  it('accepts a canonical payload', () => {
    const v = verifyTokenSignature(token(`{"v":1,"exp":${exp},"m":"GET","b":"media","p":"a/b"}`), keys);
    expect(v.claims).toMatchObject({ m: 'GET', b: 'media', p: 'a/b' });
  });

  it.each([
    ['a repeated path', `{"v":1,"exp":${exp},"m":"GET","b":"media","p":"x","p":"a/b"}`],
    ['a repeated method', `{"v":1,"exp":${exp},"m":"PUT","m":"GET","b":"media","p":"a/b"}`],
    ['a lower-case method', `{"v":1,"exp":${exp},"m":"get","b":"media","p":"a/b"}`],
    ['a mixed-case method', `{"v":1,"exp":${exp},"m":"Head","b":"media","p":"a/b"}`],
    ['a padded method', `{"v":1,"exp":${exp},"m":"GET ","b":"media","p":"a/b"}`],
    ['an unknown method', `{"v":1,"exp":${exp},"m":"POST","b":"media","p":"a/b"}`],
  ])('refuses %s with a 401', (_name, text) => {
    let err: unknown;
    try {
      verifyTokenSignature(token(text), keys);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe('GW_ERR_UNAUTHORIZED');
  });
});
