import { describe, expect, it } from 'vitest';

import { resolveS3Endpoint } from '../../src/stores/s3.js';

describe('resolveS3Endpoint', () => {
  it('adds http:// to a bare host:port when allow_http is set', () => {
    expect(resolveS3Endpoint('localhost:9000', true)).toBe('http://localhost:9000');
    expect(resolveS3Endpoint('127.0.0.1:9000', true)).toBe('http://127.0.0.1:9000');
  });

  it('adds https:// to a bare host:port without allow_http', () => {
    expect(resolveS3Endpoint('localhost:9000', false)).toBe('https://localhost:9000');
    expect(resolveS3Endpoint('s3.example.com', false)).toBe('https://s3.example.com');
  });

  it('refuses an explicit http:// endpoint without allow_http, mentioning allow_http', () => {
    expect(() => resolveS3Endpoint('http://x:1', false)).toThrow(/allow_http/);
    expect(() => resolveS3Endpoint('HTTP://x:1', false)).toThrow(/allow_http/);
  });

  it('keeps an explicit http:// endpoint with allow_http', () => {
    expect(resolveS3Endpoint('http://x:1', true)).toBe('http://x:1');
  });

  it('keeps https:// whatever allow_http says', () => {
    expect(resolveS3Endpoint('https://s3.example.com', false)).toBe('https://s3.example.com');
    expect(resolveS3Endpoint('https://s3.example.com', true)).toBe('https://s3.example.com');
  });

  it('removes trailing slashes', () => {
    expect(resolveS3Endpoint('https://s3.example.com/', false)).toBe('https://s3.example.com');
    expect(resolveS3Endpoint('https://s3.example.com//', false)).toBe('https://s3.example.com');
    expect(resolveS3Endpoint('localhost:9000/', true)).toBe('http://localhost:9000');
  });

  it.each([
    ['ftp://x', false],
    ['ftp://x', true],
    ['file:///etc', true],
    ['ws://x:1', true],
  ] as const)('refuses the non-http scheme in %s (allow_http %s)', (endpoint, allowHttp) => {
    expect(() => resolveS3Endpoint(endpoint, allowHttp)).toThrow(/http or https/);
  });

  it('refuses an endpoint that is not a URL', () => {
    expect(() => resolveS3Endpoint('not a host:9000', true)).toThrow();
  });
});
