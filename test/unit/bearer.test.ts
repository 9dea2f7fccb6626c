import { describe, expect, it } from 'vitest';

import { bearerFromHeader, createBearerVerifier } from '../../src/auth/bearer.js';

describe('createBearerVerifier', () => {
  const tokens = ['alpha-token-0123456789', 'beta-token-abcdefghij', 'γάμμα-token'];
  const verify = createBearerVerifier(tokens);

  it.each(tokens)('accepts the configured token %s', (token) => {
    expect(verify(token)).toBe(true);
  });

  it.each([
    ['an unknown token', 'gamma-token-0000000000'],
    ['the empty string', ''],
    ['a prefix of a valid token', 'alpha-token-012345678'],
    ['a one-character prefix', 'a'],
    ['a valid token with a suffix', 'alpha-token-0123456789x'],
    ['a valid token with a leading space', ' alpha-token-0123456789'],
    ['a valid token with a trailing newline', 'alpha-token-0123456789\n'],
    ['a different case', 'ALPHA-TOKEN-0123456789'],
    ['two valid tokens joined', 'alpha-token-0123456789beta-token-abcdefghij'],
    ['a token differing in its last character', 'beta-token-abcdefghiJ'],
  ])('rejects %s', (_what, presented) => {
    expect(verify(presented)).toBe(false);
  });

  it('accepts nothing when no tokens are configured', () => {
    const none = createBearerVerifier([]);
    expect(none('')).toBe(false);
    expect(none('anything')).toBe(false);
    expect(none('alpha-token-0123456789')).toBe(false);
  });

  it('handles duplicate configured tokens', () => {
    const dup = createBearerVerifier(['same', 'same']);
    expect(dup('same')).toBe(true);
    expect(dup('sam')).toBe(false);
  });

  it('accepts a token only while configured in this verifier', () => {
    const one = createBearerVerifier(['only-this']);
    expect(one('only-this')).toBe(true);
    expect(one('alpha-token-0123456789')).toBe(false);
  });
});

describe('bearerFromHeader', () => {
  it.each([
    ['Bearer abc', 'abc'],
    ['bearer abc', 'abc'],
    ['BEARER   abc', 'abc'],
    ['Bearer\tabc', 'abc'],
    ['Bearer abc ', 'abc'],
    ['Bearer eyJhbGciOi.J9-_~+/=', 'eyJhbGciOi.J9-_~+/='],
  ])('%j → %j', (header, token) => {
    expect(bearerFromHeader(header)).toBe(token);
  });

  it.each([
    undefined,
    '',
    'Basic abc',
    'Bearer',
    'Bearer ',
    'Bearer a b',
    'Bearerabc',
    ' Bearer abc',
    'Token abc',
    'Bearer abc\ndef',
  ])('%j → undefined', (header) => {
    expect(bearerFromHeader(header)).toBeUndefined();
  });
});
