import { describe, expect, it } from 'vitest';
import { mergeLayers, originOf } from '../../src/config/merge.js';
import { redactConfig } from '../../src/config/redact.js';
import { validateConfig } from '../../src/config/load.js';
import { scrubEvent } from '../../src/metrics/sentry.js';

describe('mergeLayers', () => {
  it('merges maps deep and replaces lists and scalars, in order', () => {
    const { data } = mergeLayers([
      { name: 'a', data: { cache: { max_memory: '1MiB', max_disk: 0 }, auth: { bearer_tokens: ['x', 'y'] } } },
      { name: 'b', data: { cache: { max_disk: '1GiB' }, auth: { bearer_tokens: ['z'] } } },
    ]);
    expect(data).toEqual({ cache: { max_memory: '1MiB', max_disk: '1GiB' }, auth: { bearer_tokens: ['z'] } });
  });

  it('a later scalar replaces a whole map, and a later map replaces a scalar', () => {
    const { data } = mergeLayers([
      { name: 'a', data: { sentry: { dsn: 'x' }, listen: ':1' } },
      { name: 'b', data: { sentry: null, listen: { nested: true } } },
    ]);
    expect(data).toEqual({ sentry: null, listen: { nested: true } });
  });

  it('remembers which layer set each path, and forgets leaves a later layer replaced', () => {
    const { origins } = mergeLayers([
      { name: 'base.yaml', data: { stores: { media: { type: 's3', bucket: 'b' } }, auth: { keys: [{ id: 'k' }] } } },
      { name: 'secrets.yaml', data: { stores: { media: { secret_key: 's' } }, auth: { keys: [] } } },
    ]);
    expect(originOf(origins, ['stores', 'media', 'bucket'])).toBe('base.yaml');
    expect(originOf(origins, ['stores', 'media', 'secret_key'])).toBe('secrets.yaml');
    expect(originOf(origins, ['stores', 'media', 'missing'])).toBe('base.yaml');
    expect(originOf(origins, ['auth', 'keys', 0, 'id'])).toBe('secrets.yaml');
    expect(originOf(origins, ['nowhere'])).toBeUndefined();
  });
});

describe('redactConfig', () => {
  it('masks every secret and keeps the rest', () => {
    const config = validateConfig({
      auth: { bearer_token: 'tok-1', bearer_tokens: ['tok-2'], keys: [{ id: 'k', public_key: 'pub', private_key: 'PRIV-VALUE' }] },
      stores: {
        s: { type: 's3', bucket: 'b', access_key: 'AK', secret_key: 'SK', endpoint: '127.0.0.1:1', allow_http: true },
        a: { type: 'azure', container: 'c', account_url: 'https://acct.blob.core.windows.net', sas_token: 'sv=1&sig=SECRET' },
        z: { type: 'azure', container: 'c', connection_string: 'AccountKey=SECRET' },
      },
      sentry: { dsn: 'https://publickey@sentry.example.com/42' },
    });
    const text = JSON.stringify(redactConfig(config));
    for (const secret of ['tok-1', 'tok-2', 'PRIV-VALUE', 'AK', 'SK', 'SECRET', 'publickey']) expect(text).not.toContain(secret);
    expect(text).toContain('"public_key":"pub"');
    expect(text).toContain('sentry.example.com/42');
    expect(text).toContain('"bucket":"b"');
  });
});

describe('scrubEvent', () => {
  it('masks sig values and bearer tokens in messages, and drops request data', () => {
    const event = scrubEvent({
      type: undefined,
      message: 'GET /m/k?sig=abc.def&x=1 with Authorization: Bearer tok-123',
      request: { url: 'http://x/m/k?sig=abc.def', headers: { authorization: 'Bearer tok-123' } },
      user: { ip_address: '127.0.0.1' },
      exception: { values: [{ type: 'Error', value: 'failed for /m/k?sig=abc.def (bearer tok-123)' }] },
    });
    const text = JSON.stringify(event);
    expect(text).not.toContain('abc.def');
    expect(text).not.toContain('tok-123');
    expect(event.request).toBeUndefined();
    expect(event.user).toBeUndefined();
    expect(event.exception!.values![0]!.value).toContain('sig=[redacted]');
  });
});
