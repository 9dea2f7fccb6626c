import { describe, expect, it } from 'vitest';

import {
  ALWAYS_EXPOSED,
  DEFAULT_CORS_HEADERS,
  DEFAULT_CORS_METHODS,
  corsHeaders,
  preflight,
  type CorsConfig,
} from '../../src/http/cors.js';

const EXPOSED = 'Content-Range, Content-Length, ETag, X-CG-Status, Accept-Ranges, Last-Modified, Content-Type, Content-Disposition';
const PREFLIGHT_VARY = 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers';

const exact: CorsConfig = { allowed_origins: ['https://app.example.com', 'http://localhost:3000'] };
const wildcard: CorsConfig = { allowed_origins: ['https://*.example.com'] };
const any: CorsConfig = { allowed_origins: ['*'] };

describe('constants', () => {
  it('exports the defaults', () => {
    expect(DEFAULT_CORS_METHODS).toEqual(['GET', 'HEAD', 'PUT']);
    expect(DEFAULT_CORS_HEADERS).toContain('Range');
    expect(DEFAULT_CORS_HEADERS).toContain('Authorization');
    expect(ALWAYS_EXPOSED.join(', ')).toBe(EXPOSED);
  });
});

describe('corsHeaders: origin matching', () => {
  it.each<[string, CorsConfig, string | undefined, string | undefined]>([
    // [name, config, Origin, expected Access-Control-Allow-Origin]
    ['exact', exact, 'https://app.example.com', 'https://app.example.com'],
    ['exact with port', exact, 'http://localhost:3000', 'http://localhost:3000'],
    ['wrong port', exact, 'http://localhost:3001', undefined],
    ['wrong scheme', exact, 'http://app.example.com', undefined],
    ['case-insensitive host, reflected as received', exact, 'https://APP.example.com', 'https://APP.example.com'],
    ['default port equals no port', { allowed_origins: ['https://app.example.com:443'] }, 'https://app.example.com', 'https://app.example.com'],
    ['config trailing slash forgiven', { allowed_origins: ['https://app.example.com/'] }, 'https://app.example.com', 'https://app.example.com'],
    ['suffix attack', exact, 'https://app.example.com.evil.com', undefined],
    ['prefix attack', exact, 'https://evilapp.example.com', undefined],
    ['path in Origin', exact, 'https://app.example.com/x', undefined],
    ['userinfo in Origin', exact, 'https://app.example.com@evil.com', undefined],
    ['null Origin', exact, 'null', undefined],
    ['CRLF in Origin', exact, 'https://app.example.com\r\nx-evil: 1', undefined],
    ['empty Origin', exact, '', undefined],
    ['no Origin', exact, undefined, undefined],
    // wildcard subdomains
    ['wildcard: one label', wildcard, 'https://a.example.com', 'https://a.example.com'],
    ['wildcard: two labels', wildcard, 'https://a.b.example.com', 'https://a.b.example.com'],
    ['wildcard: apex does not match', wildcard, 'https://example.com', undefined],
    ['wildcard: lookalike domain', wildcard, 'https://evilexample.com', undefined],
    ['wildcard: suffix attack', wildcard, 'https://a.example.com.evil.com', undefined],
    ['wildcard: scheme must match', wildcard, 'http://a.example.com', undefined],
    ['wildcard: port must match', wildcard, 'https://a.example.com:8443', undefined],
    ['wildcard with port', { allowed_origins: ['https://*.example.com:8443'] }, 'https://a.example.com:8443', 'https://a.example.com:8443'],
    ['star only as leftmost label', { allowed_origins: ['https://a.*.com'] }, 'https://a.b.com', undefined],
  ])('%s', (_name, config, origin, expected) => {
    expect(corsHeaders(config, origin)['access-control-allow-origin']).toBe(expected);
  });
});

describe('corsHeaders: exact headers', () => {
  it('is empty without a config, whatever the Origin', () => {
    expect(corsHeaders(undefined, 'https://app.example.com')).toEqual({});
    expect(corsHeaders(undefined, undefined)).toEqual({});
  });

  it('answers an allowed origin with the origin, exposed headers and Vary', () => {
    expect(corsHeaders(exact, 'https://app.example.com')).toEqual({
      'access-control-allow-origin': 'https://app.example.com',
      'access-control-expose-headers': EXPOSED,
      vary: 'Origin',
    });
  });

  it('gives a disallowed or missing origin nothing but Vary: Origin', () => {
    expect(corsHeaders(exact, 'https://evil.com')).toEqual({ vary: 'Origin' });
    expect(corsHeaders(exact, undefined)).toEqual({ vary: 'Origin' });
    expect(corsHeaders(wildcard, 'null')).toEqual({ vary: 'Origin' });
  });

  it("answers '*' without credentials with constant headers, even without Origin", () => {
    const expected = { 'access-control-allow-origin': '*', 'access-control-expose-headers': EXPOSED };
    expect(corsHeaders(any, 'https://anything.test')).toEqual(expected);
    expect(corsHeaders(any, 'null')).toEqual(expected);
    expect(corsHeaders(any, undefined)).toEqual(expected);
  });

  it("reflects the origin for '*' with credentials, never 'null'", () => {
    const config: CorsConfig = { allowed_origins: ['*'], allow_credentials: true };
    expect(corsHeaders(config, 'https://a.test')).toEqual({
      'access-control-allow-origin': 'https://a.test',
      'access-control-expose-headers': EXPOSED,
      'access-control-allow-credentials': 'true',
      vary: 'Origin',
    });
    expect(corsHeaders(config, 'null')).toEqual({ vary: 'Origin' });
  });

  it('adds credentials when configured', () => {
    const config: CorsConfig = { ...exact, allow_credentials: true };
    expect(corsHeaders(config, 'https://app.example.com')['access-control-allow-credentials']).toBe('true');
    expect(corsHeaders(exact, 'https://app.example.com')['access-control-allow-credentials']).toBeUndefined();
  });

  it('merges expose_headers after ALWAYS_EXPOSED, deduplicated, dropping invalid names', () => {
    const config: CorsConfig = { ...exact, expose_headers: ['X-Request-Id', 'etag', 'Bad Header', 'x-evil\r\nset-cookie: a'] };
    expect(corsHeaders(config, 'https://app.example.com')['access-control-expose-headers']).toBe(`${EXPOSED}, X-Request-Id`);
  });
});

describe('preflight', () => {
  const origin = 'https://app.example.com';

  it('is undefined for a request that is not a preflight', () => {
    expect(preflight(exact, { origin: undefined, requestMethod: 'GET' })).toBeUndefined();
    expect(preflight(exact, { origin, requestMethod: undefined })).toBeUndefined();
    expect(preflight(undefined, { origin: undefined, requestMethod: undefined })).toBeUndefined();
  });

  it('refuses when the store has no CORS config', () => {
    expect(preflight(undefined, { origin, requestMethod: 'GET' })).toEqual({ status: 403, reason: 'CORS is not enabled for this store' });
  });

  it('answers an allowed preflight with the exact headers', () => {
    expect(preflight({ ...exact, max_age: 600 }, { origin, requestMethod: 'GET', requestHeaders: 'Range, If-None-Match' })).toEqual({
      status: 204,
      headers: {
        'access-control-allow-origin': origin,
        'access-control-allow-methods': 'GET, HEAD, PUT',
        'access-control-allow-headers': 'range, if-none-match',
        'access-control-max-age': '600',
        vary: PREFLIGHT_VARY,
      },
    });
  });

  it('omits Allow-Headers when none are requested, Max-Age when not configured', () => {
    expect(preflight(exact, { origin, requestMethod: 'PUT' })).toEqual({
      status: 204,
      headers: { 'access-control-allow-origin': origin, 'access-control-allow-methods': 'GET, HEAD, PUT', vary: PREFLIGHT_VARY },
    });
  });

  it('adds credentials when configured', () => {
    const res = preflight({ ...exact, allow_credentials: true }, { origin, requestMethod: 'GET' });
    expect(res).toMatchObject({ status: 204, headers: { 'access-control-allow-credentials': 'true' } });
  });

  it.each<[string, CorsConfig, { origin: string; requestMethod: string; requestHeaders?: string }, string]>([
    ['disallowed origin', exact, { origin: 'https://evil.com', requestMethod: 'GET' }, 'origin not allowed'],
    ['null origin', exact, { origin: 'null', requestMethod: 'GET' }, 'origin not allowed'],
    ['disallowed method', exact, { origin, requestMethod: 'DELETE' }, 'method DELETE not allowed'],
    ['methods are case-sensitive', exact, { origin, requestMethod: 'patch' }, 'method patch not allowed'],
    ['invalid method', exact, { origin, requestMethod: 'G ET' }, 'invalid Access-Control-Request-Method'],
    ['disallowed header', exact, { origin, requestMethod: 'GET', requestHeaders: 'range, x-custom' }, 'request header x-custom not allowed'],
    ['invalid header name', exact, { origin, requestMethod: 'GET', requestHeaders: 'range, x bad' }, 'invalid Access-Control-Request-Headers'],
    ['header not in configured list', { ...exact, allowed_headers: ['Range'] }, { origin, requestMethod: 'GET', requestHeaders: 'authorization' }, 'request header authorization not allowed'],
    ['method not in configured list', { ...exact, allowed_methods: ['GET'] }, { origin, requestMethod: 'PUT' }, 'method PUT not allowed'],
  ])('refuses: %s', (_name, config, req, reason) => {
    expect(preflight(config, req)).toEqual({ status: 403, reason });
  });

  it('never reflects a disallowed origin', () => {
    const res = preflight(exact, { origin: 'https://evil.com', requestMethod: 'GET' });
    expect(res).not.toHaveProperty('headers');
  });

  it("supports '*' in allowed_headers and allowed_methods, echoing what was asked", () => {
    const config: CorsConfig = { allowed_origins: ['*'], allowed_headers: ['*'], allowed_methods: ['*'] };
    expect(preflight(config, { origin: 'https://x.test', requestMethod: 'DELETE', requestHeaders: 'X-Custom,Authorization, x-custom' })).toEqual({
      status: 204,
      headers: {
        'access-control-allow-origin': '*',
        'access-control-allow-methods': 'DELETE',
        'access-control-allow-headers': 'x-custom, authorization',
        vary: PREFLIGHT_VARY,
      },
    });
  });

  it('matches requested headers case-insensitively and tolerates whitespace and empty members', () => {
    const res = preflight(exact, { origin, requestMethod: 'GET', requestHeaders: ' AUTHORIZATION ,, if-range,\tContent-Type ' });
    expect(res).toMatchObject({ status: 204, headers: { 'access-control-allow-headers': 'authorization, if-range, content-type' } });
  });

  it('floors max_age and ignores a negative one', () => {
    expect(preflight({ ...exact, max_age: 86400.9 }, { origin, requestMethod: 'GET' })).toMatchObject({
      headers: { 'access-control-max-age': '86400' },
    });
    expect(preflight({ ...exact, max_age: -1 }, { origin, requestMethod: 'GET' })).not.toHaveProperty(['headers', 'access-control-max-age']);
  });

  it('accepts wildcard-subdomain origins', () => {
    expect(preflight(wildcard, { origin: 'https://cdn.example.com', requestMethod: 'GET' })).toMatchObject({
      status: 204,
      headers: { 'access-control-allow-origin': 'https://cdn.example.com' },
    });
    expect(preflight(wildcard, { origin: 'https://example.com', requestMethod: 'GET' })).toEqual({ status: 403, reason: 'origin not allowed' });
  });
});
