import { describe, expect, it } from 'vitest';

import {
  DEFAULT_BEARER_CACHE_CONTROL,
  DEFAULT_LINK_MAX_AGE_SEC,
  MAX_CACHE_CONTROL_CHARS,
  cacheControlFor,
  isValidCacheControl,
  type CacheControlOptions,
} from '../../src/http/cache-control.js';

const NOW = 1_700_000_000;

describe('cacheControlFor: bearer', () => {
  it.each<[string, Omit<CacheControlOptions, 'auth' | 'nowSec'>, string]>([
    ['default', {}, 'private, no-store'],
    ['ignores link options', { linkExpiresAtSec: NOW + 10, maxAgeSec: 60 }, 'private, no-store'],
    ['configured, as given', { configured: 'public, max-age=31536000, immutable' }, 'public, max-age=31536000, immutable'],
    ['configured, normalised spacing', { configured: 'private,max-age=60 ,  must-revalidate' }, 'private, max-age=60, must-revalidate'],
    ['configured invalid → default', { configured: 'private\r\nSet-Cookie: a=1' }, 'private, no-store'],
    ['configured empty → default', { configured: '' }, 'private, no-store'],
  ])('%s', (_name, opts, expected) => {
    expect(cacheControlFor({ auth: 'bearer', nowSec: NOW, ...opts })).toBe(expected);
  });

  it('exports the default', () => {
    expect(DEFAULT_BEARER_CACHE_CONTROL).toBe('private, no-store');
  });
});

describe('cacheControlFor: signed link, default', () => {
  it.each<[string, Omit<CacheControlOptions, 'auth' | 'nowSec'>, string]>([
    ['link outlives the default', { linkExpiresAtSec: NOW + 86400 }, `private, max-age=${DEFAULT_LINK_MAX_AGE_SEC}`],
    ['link expires first', { linkExpiresAtSec: NOW + 600 }, 'private, max-age=600'],
    ['exactly the default', { linkExpiresAtSec: NOW + 3600 }, 'private, max-age=3600'],
    ['expires this second', { linkExpiresAtSec: NOW }, 'private, max-age=0'],
    ['already expired (clock skew)', { linkExpiresAtSec: NOW - 30 }, 'private, max-age=0'],
    ['fractional time floors', { linkExpiresAtSec: NOW + 10.9 }, 'private, max-age=10'],
    ['store max age below lifetime', { linkExpiresAtSec: NOW + 600, maxAgeSec: 60 }, 'private, max-age=60'],
    ['store max age above lifetime', { linkExpiresAtSec: NOW + 600, maxAgeSec: 7200 }, 'private, max-age=600'],
    ['store max age 0', { linkExpiresAtSec: NOW + 600, maxAgeSec: 0 }, 'private, max-age=0'],
    ['negative max age floors to 0', { linkExpiresAtSec: NOW + 600, maxAgeSec: -5 }, 'private, max-age=0'],
    ['non-finite max age → default', { linkExpiresAtSec: NOW + 86400, maxAgeSec: Infinity }, 'private, max-age=3600'],
    ['link without expiry', {}, 'private, max-age=3600'],
    ['link without expiry, store max age', { maxAgeSec: 120 }, 'private, max-age=120'],
  ])('%s', (_name, opts, expected) => {
    expect(cacheControlFor({ auth: 'link', nowSec: NOW, ...opts })).toBe(expected);
  });

  it('handles a fractional now', () => {
    expect(cacheControlFor({ auth: 'link', nowSec: NOW + 0.5, linkExpiresAtSec: NOW + 100 })).toBe('private, max-age=99');
  });
});

describe('cacheControlFor: signed link, configured', () => {
  it.each<[string, string, number | undefined, string]>([
    // [name, configured, seconds the link has left, expected]
    ['max-age below lifetime kept', 'public, max-age=60', 600, 'public, max-age=60'],
    ['max-age clamped to lifetime', 'public, max-age=31536000, immutable', 600, 'public, max-age=600, immutable'],
    ['max-age clamped to 0 at expiry', 'public, max-age=60', 0, 'public, max-age=0'],
    ['expired link clamps to 0', 'public, max-age=60', -10, 'public, max-age=0'],
    ['s-maxage clamped too', 'public, max-age=60, s-maxage=86400', 600, 'public, max-age=60, s-maxage=600'],
    ['upper-case directive names', 'Public, Max-Age=86400', 600, 'Public, max-age=600'],
    ['quoted max-age value', 'max-age="86400"', 600, 'max-age=600'],
    ['invalid max-age value gets the lifetime', 'max-age=soon', 600, 'max-age=600'],
    ['max-age added when missing', 'public, immutable', 600, 'public, immutable, max-age=600'],
    ['only s-maxage: max-age added', 'public, s-maxage=60', 600, 'public, s-maxage=60, max-age=600'],
    ['no-store kept as is', 'no-store', 600, 'no-store'],
    ['no-cache kept as is', 'private, no-cache', 600, 'private, no-cache'],
    ['quoted commas preserved', 'private, no-cache="set-cookie, x-a", max-age=999', 600, 'private, no-cache="set-cookie, x-a", max-age=600'],
    ['every max-age clamped', 'max-age=9999, max-age=10', 600, 'max-age=600, max-age=10'],
    ['no expiry: configured kept', 'public, max-age=31536000', undefined, 'public, max-age=31536000'],
    ['no expiry: nothing added', 'public', undefined, 'public'],
    ['invalid configured → default', 'max-age=60\nX: y', 600, 'private, max-age=600'],
    ['unterminated quote → default', 'no-cache="a', 600, 'private, max-age=600'],
  ])('%s', (_name, configured, remaining, expected) => {
    const linkExpiresAtSec = remaining === undefined ? undefined : NOW + remaining;
    expect(cacheControlFor({ auth: 'link', nowSec: NOW, linkExpiresAtSec, configured })).toBe(expected);
  });

  it('ignores maxAgeSec when a value is configured', () => {
    expect(cacheControlFor({ auth: 'link', nowSec: NOW, linkExpiresAtSec: NOW + 600, configured: 'public', maxAgeSec: 5 })).toBe(
      'public, max-age=600',
    );
  });
});

describe('isValidCacheControl', () => {
  it.each([
    ['no-store', true],
    ['private, max-age=0', true],
    ['public, max-age=31536000, immutable', true],
    ['no-cache="Set-Cookie, X-A"', true],
    ['max-age="60"', true],
    ['a, , b', true],
    ['', false],
    [' , ', false],
    ['max-age=', false],
    ['max age=1', false],
    ['no-cache="a', false],
    ['private\r\n', false],
    ['private\u0000', false],
    ['max-age=1=2', false],
    ['é', false],
    [`x-${'a'.repeat(MAX_CACHE_CONTROL_CHARS)}`, false],
  ])('%j → %s', (value, expected) => {
    expect(isValidCacheControl(value)).toBe(expected);
  });
});
