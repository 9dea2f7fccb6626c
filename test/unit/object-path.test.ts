import { describe, expect, it } from 'vitest';

import { GatewayError } from '../../src/errors.js';
import { MAX_KEY_BYTES, parseObjectPath, rawPathOf } from '../../src/http/object-path.js';

function expectInvalidKey(rawPath: string): GatewayError {
  let caught: unknown;
  try {
    parseObjectPath(rawPath);
  } catch (err) {
    caught = err;
  }
  expect(caught, `${rawPath} should be rejected`).toBeInstanceOf(GatewayError);
  const err = caught as GatewayError;
  expect(err.code).toBe('GW_ERR_INVALID_KEY');
  expect(err.message).not.toContain('\n');
  return err;
}

describe('rawPathOf', () => {
  it.each([
    ['/a/b', '/a/b'],
    ['/a/b?sig=x', '/a/b'],
    ['/a/b?sig=x&y=%2F', '/a/b'],
    ['/a/b#frag', '/a/b'],
    ['/a/%2e%2e/b?x', '/a/%2e%2e/b'],
    ['http://h:1/a/b?x', '/a/b'],
    ['https://example.com/media/k.jpg', '/media/k.jpg'],
    ['HTTP://H/a', '/a'],
    ['http://h:1', '/'],
    ['http://h:1?x', '/'],
  ])('%s → %s', (target, path) => {
    expect(rawPathOf(target)).toBe(path);
  });

  it('keeps percent-encoding as sent', () => {
    expect(rawPathOf('/m/a%2Fb%20c')).toBe('/m/a%2Fb%20c');
  });
});

describe('parseObjectPath', () => {
  it('splits the bucket id from the key', () => {
    expect(parseObjectPath('/media/a/b.jpg')).toEqual({ bucket: 'media', key: 'a/b.jpg' });
    expect(parseObjectPath('/media/k')).toEqual({ bucket: 'media', key: 'k' });
  });

  it('decodes percent-encoding exactly once', () => {
    expect(parseObjectPath('/m/a%2520b').key).toBe('a%20b');
    expect(parseObjectPath('/m/a%20b').key).toBe('a b');
    expect(parseObjectPath('/m/caf%C3%A9').key).toBe('café');
    expect(parseObjectPath('/m/100%25').key).toBe('100%');
  });

  it('decodes the bucket id', () => {
    expect(parseObjectPath('/my%2Dbucket/k').bucket).toBe('my-bucket');
  });

  it('decodes %2F to a separator inside the key', () => {
    expect(parseObjectPath('/m/a%2Fb').key).toBe('a/b');
  });

  it.each([
    ['/m/a+b', 'a+b'],
    ['/m/a%2Bb', 'a+b'],
    ['/m/with%20space.txt', 'with space.txt'],
    ['/m/日本語/ファイル.png', '日本語/ファイル.png'],
    ['/m/%E6%97%A5%E6%9C%AC', '日本'],
    ['/m/.hidden', '.hidden'],
    ['/m/a/..b/c..', 'a/..b/c..'],
    ['/m/...', '...'],
    ['/m/a;b=c,d(e)!~*\'', "a;b=c,d(e)!~*'"],
  ])('accepts %s as key %j', (raw, key) => {
    expect(parseObjectPath(raw).key).toBe(key);
  });

  it.each([
    '/m/',
    '/m',
    '/m/a//b',
    '/m//b',
    '/m/a/',
    '/m/a%2F',
    '/m/a%2F%2Fb',
    '/m/.',
    '/m/..',
    '/m/a/./b',
    '/m/a/../b',
    '/m/../b',
    '/m/%2e%2e',
    '/m/%2E%2E',
    '/m/.%2e',
    '/m/%2e.',
    '/m/%2e',
    '/m/a/%2e%2e/b',
    '/m/a%2F..%2Fb',
    '/m/a%2F.%2Fb',
    '/m/a\\b',
    '/m/a%5Cb',
    '/m/a%5cb',
    '/m/..%5C..%5Cetc',
    '/m/a%00b',
    '/m/a%0ab',
    '/m/a%0D%0AX-Injected:1',
    '/m/a%09b',
    '/m/a%7fb',
    '/m/a%zz',
    '/m/%E0%A4%A',
    '/m/%',
    '/m/a%2',
    '/m/%C3',
  ])('rejects %s', (raw) => {
    expectInvalidKey(raw);
  });

  it('rejects a missing bucket id', () => {
    expectInvalidKey('//k');
    expectInvalidKey('/');
  });

  it('rejects a path that does not start with /', () => {
    expectInvalidKey('m/k');
  });

  it('rejects a malformed bucket id encoding', () => {
    expectInvalidKey('/b%zz/k');
  });

  it(`accepts keys of exactly ${MAX_KEY_BYTES} UTF-8 bytes and rejects longer ones`, () => {
    expect(MAX_KEY_BYTES).toBe(1024);
    const ok = 'a'.repeat(1024);
    expect(parseObjectPath(`/m/${ok}`).key).toBe(ok);
    expectInvalidKey(`/m/${'a'.repeat(1025)}`);
  });

  it('counts the key length in UTF-8 bytes, not characters', () => {
    // 'é' is two bytes in UTF-8: 512 of them are 1024 bytes, 513 are 1026.
    expect(parseObjectPath(`/m/${'%C3%A9'.repeat(512)}`).key).toBe('é'.repeat(512));
    expectInvalidKey(`/m/${'%C3%A9'.repeat(513)}`);
    expectInvalidKey(`/m/${'é'.repeat(513)}`);
  });

  it('gives a one-line reason a client can read', () => {
    expect(expectInvalidKey('/m/a/../b').message).toMatch(/'\.\.'/);
    expect(expectInvalidKey('/m/').message).toMatch(/empty/);
    expect(expectInvalidKey('/m/a%zz').message).toMatch(/percent-encoding/);
  });
});
