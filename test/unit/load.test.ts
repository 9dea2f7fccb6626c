import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { configFromEnv, embeddedDefault, loadConfig, parseListen, validateConfig } from '../../src/config/load.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { GatewayError } from '../../src/errors.js';

const FULL_YAML = `
listen: 0.0.0.0:9090
auth:
  public_key: "MCowBQYDK2VwAyEAc2lnbmluZy1wdWJsaWMta2V5LWZvci10ZXN0cw=="
  private_key: "MC4CAQAwBQYDK2VwBCIEIHByaXZhdGUta2V5LWZvci10ZXN0cy1vbmx5IQ=="
  bearer_token: "s3cret-token"
cache:
  max_memory: 64MiB
  max_object_size: 0
  max_disk: 10GB
  disk_path: /var/cache/cachegate
stores:
  media:
    type: s3
    bucket: media-bucket
    region: eu-west-1
    access_key: AKIAEXAMPLE
    secret_key: secretexample
    endpoint: localhost:9000
    allow_http: true
  docs:
    type: azure
    container: documents
    connection_string: "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
  local:
    type: fs
    root: /srv/data
sentry:
  dsn: null
`;

const FS_STORE = { local: { type: 'fs', root: './data' } };
const AUTH = { bearer_token: 'tok' };

/** The error thrown by `fn`, asserted to be a config GatewayError without a stack trace in its message. */
function configError(fn: () => unknown): GatewayError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(GatewayError);
  const err = caught as GatewayError;
  expect(err.code).toBe('GW_ERR_CONFIG');
  expect(err.message).not.toContain('    at ');
  return err;
}

describe('loadConfig from a file', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cachegate-load-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function writeConfig(text: string): Promise<string> {
    const path = join(dir, 'config.yaml');
    await writeFile(path, text, 'utf8');
    return path;
  }

  it('parses a full cachegate-style config with sizes in bytes', async () => {
    const path = await writeConfig(FULL_YAML);
    const loaded = await loadConfig({ kind: 'file', path });
    const c = loaded.config;

    expect(loaded.source).toEqual({ kind: 'file', path });
    expect(loaded.generatedBearerToken).toBeUndefined();
    expect(c.listen).toBe('0.0.0.0:9090');
    expect(c.auth.public_key).toBe('MCowBQYDK2VwAyEAc2lnbmluZy1wdWJsaWMta2V5LWZvci10ZXN0cw==');
    expect(c.auth.private_key).toBe('MC4CAQAwBQYDK2VwBCIEIHByaXZhdGUta2V5LWZvci10ZXN0cy1vbmx5IQ==');
    expect(c.auth.bearer_token).toBe('s3cret-token');
    expect(c.cache).toEqual({
      max_memory: 64 * 2 ** 20,
      max_object_size: 0,
      max_disk: 10_000_000_000,
      disk_path: '/var/cache/cachegate',
      slice_size: 0,
      max_fill_memory: 0,
    });
    // Unset, max_object_size is max_disk when there is a disk tier.
    expect(resolveConfig(c).maxObjectBytes).toBe(10_000_000_000);
    expect(c.stores.media).toMatchObject({
      type: 's3',
      bucket: 'media-bucket',
      region: 'eu-west-1',
      access_key: 'AKIAEXAMPLE',
      secret_key: 'secretexample',
      endpoint: 'localhost:9000',
      allow_http: true,
    });
    expect(c.stores.docs).toEqual({
      type: 'azure',
      container: 'documents',
      connection_string:
        'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;',
    });
    expect(c.stores.local).toEqual({ type: 'fs', root: '/srv/data' });
    expect(Object.keys(c.stores).sort()).toEqual(['docs', 'local', 'media']);
  });

  it('reports an unreadable file as a config error naming the path', async () => {
    const path = join(dir, 'missing.yaml');
    await expect(loadConfig({ kind: 'file', path })).rejects.toMatchObject({
      code: 'GW_ERR_CONFIG',
      message: expect.stringContaining(path),
    });
  });

  it('reports invalid YAML in one line naming the file', async () => {
    const path = await writeConfig('stores: [unclosed\n  nope: {');
    const err = await loadConfig({ kind: 'file', path }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe('GW_ERR_CONFIG');
    expect((err as GatewayError).message).toContain(path);
    expect((err as GatewayError).message).toContain('invalid YAML');
    expect((err as GatewayError).message).not.toContain('\n');
  });

  it('reports schema errors from a file with their config path', async () => {
    const path = await writeConfig('auth:\n  bearer_token: t\nstores:\n  media:\n    type: s3\n');
    await expect(loadConfig({ kind: 'file', path })).rejects.toMatchObject({
      code: 'GW_ERR_CONFIG',
      message: expect.stringContaining('stores.media.bucket'),
    });
  });
});

describe('validateConfig', () => {
  it('reads stores.<id>.cache with its defaults, and names the path of a bad duration or policy', () => {
    const plain = validateConfig({ auth: AUTH, stores: FS_STORE });
    expect(plain.stores.local!.cache).toBeUndefined();
    const c = validateConfig({
      auth: AUTH,
      stores: { local: { type: 'fs', root: './data', cache: { policy: 'revalidate', max_age: '60s', stale_while_revalidate: '10s', stale_if_error: '1h', stale_if_error_on: '5xx, timeout' } } },
    });
    expect(c.stores.local!.cache).toEqual({ policy: 'revalidate', max_age: 60_000, stale_while_revalidate: 10_000, stale_if_error: 3_600_000, stale_if_error_on: ['5xx', 'timeout'], negative_ttl: 0 });
    for (const [field, value] of [
      ['max_age', 'soon'],
      ['stale_while_revalidate', '-5s'],
      ['stale_if_error', 'forever'],
      ['negative_ttl', '1 fortnight'],
      ['policy', 'sometimes'],
      ['stale_if_error_on', ['dns']],
    ] as const) {
      expect(() => validateConfig({ auth: AUTH, stores: { local: { type: 'fs', root: './data', cache: { [field]: value } } } }), field).toThrow(
        new RegExp(`stores\\.local\\.cache\\.${field}`),
      );
    }
  });

  it('defaults max_object_size to max_memory when absent and there is no disk tier', () => {
    const c = validateConfig({ auth: AUTH, cache: { max_memory: '32MiB' }, stores: FS_STORE });
    expect(c.cache.max_memory).toBe(32 * 2 ** 20);
    expect(resolveConfig(c).maxObjectBytes).toBe(32 * 2 ** 20);
  });

  it('defaults max_object_size to max_disk when there is a disk tier', () => {
    const c = validateConfig({ auth: AUTH, cache: { max_memory: '32MiB', max_disk: '2GiB', disk_path: '/tmp/x' }, stores: FS_STORE });
    expect(resolveConfig(c).maxObjectBytes).toBe(2 * 2 ** 30);
  });

  it('keeps an explicit max_object_size', () => {
    const c = validateConfig({ auth: AUTH, cache: { max_memory: '32MiB', max_object_size: '1MiB' }, stores: FS_STORE });
    expect(resolveConfig(c).maxObjectBytes).toBe(2 ** 20);
  });

  it('derives slice size and fill budget: 8 MiB slices, a quarter of max_memory but at least two slices', () => {
    const small = resolveConfig(validateConfig({ auth: AUTH, cache: { max_memory: '32MiB' }, stores: FS_STORE }));
    expect(small).toMatchObject({ sliceBytes: 8 * 2 ** 20, maxFillBytes: 16 * 2 ** 20 });
    const big = resolveConfig(validateConfig({ auth: AUTH, cache: { max_memory: '1GiB' }, stores: FS_STORE }));
    expect(big.maxFillBytes).toBe(256 * 2 ** 20);
    const set = resolveConfig(
      validateConfig({ auth: AUTH, cache: { max_memory: '1GiB', slice_size: '1MiB', max_fill_memory: '5MiB' }, stores: FS_STORE }),
    );
    expect(set).toMatchObject({ sliceBytes: 2 ** 20, maxFillBytes: 5 * 2 ** 20 });
    expect(set.memory.maxEntryBytes).toBeLessThan(2 * 2 ** 20);
  });

  it('applies defaults for listen, cache, limits and s3 options', () => {
    const c = validateConfig({ auth: AUTH, stores: { media: { type: 's3', bucket: 'b' } } });
    expect(c.listen).toBe('0.0.0.0:8080');
    expect(c.cache.max_memory).toBe(256 * 2 ** 20);
    expect(resolveConfig(c).maxObjectBytes).toBe(256 * 2 ** 20);
    expect(c.cache.max_disk).toBe(0);
    expect(c.stores.media).toMatchObject({ type: 's3', bucket: 'b', region: 'us-east-1', allow_http: false });
    expect(c.auth.bearer_tokens).toEqual([]);
    expect(c.auth.keys).toEqual([]);
  });

  it('accepts sentry with a null dsn, and a missing sentry section', () => {
    expect(() => validateConfig({ auth: AUTH, stores: FS_STORE, sentry: { dsn: null } })).not.toThrow();
    expect(() => validateConfig({ auth: AUTH, stores: FS_STORE, sentry: null })).not.toThrow();
    expect(() => validateConfig({ auth: AUTH, stores: FS_STORE })).not.toThrow();
  });

  it('ignores unknown top-level keys so cachegate configs keep working', () => {
    const c = validateConfig({ auth: AUTH, stores: FS_STORE, some_future_option: { x: 1 } });
    expect(c.stores.local).toEqual({ type: 'fs', root: './data' });
  });

  it('lowercases store ids', () => {
    const c = validateConfig({ auth: AUTH, stores: { Media: { type: 'fs', root: '/m' } } });
    expect(Object.keys(c.stores)).toEqual(['media']);
  });

  it('names the path of a missing s3 bucket', () => {
    const err = configError(() => validateConfig({ auth: AUTH, stores: { media: { type: 's3', region: 'x' } } }));
    expect(err.message).toContain('stores.media.bucket');
  });

  it('names the path of an unknown store type', () => {
    const err = configError(() => validateConfig({ auth: AUTH, stores: { x: { type: 'gcs', bucket: 'b' } } }));
    expect(err.message).toContain('stores.x.type');
  });

  it('names the path of a store without a type', () => {
    const err = configError(() => validateConfig({ auth: AUTH, stores: { x: { bucket: 'b' } } }));
    expect(err.message).toContain('stores.x.type');
  });

  it('names the path of a bad size', () => {
    const err = configError(() => validateConfig({ auth: AUTH, cache: { max_memory: 'lots' }, stores: FS_STORE }));
    expect(err.message).toContain('cache.max_memory');
    expect(err.message).toContain("'lots'");
  });

  it('names the path of an empty required string', () => {
    const err = configError(() => validateConfig({ auth: AUTH, stores: { files: { type: 'fs', root: '' } } }));
    expect(err.message).toContain('stores.files.root');
  });

  it('reports every problem, each with its own path', () => {
    const err = configError(() =>
      validateConfig({
        auth: AUTH,
        cache: { max_memory: 'lots' },
        stores: { media: { type: 's3' }, docs: { type: 'azure', container: 'c' } },
      }),
    );
    expect(err.message).toContain('cache.max_memory');
    expect(err.message).toContain('stores.media.bucket');
    expect(err.message).toContain('stores.docs.connection_string');
  });

  it('rejects a config without stores', () => {
    const err = configError(() => validateConfig({ auth: AUTH }));
    expect(err.message).toContain('stores');
  });

  it('rejects an empty stores section', () => {
    const err = configError(() => validateConfig({ auth: AUTH, stores: {} }));
    expect(err.message).toContain('stores');
  });

  it('rejects a config with no auth at all', () => {
    const err = configError(() => validateConfig({ stores: FS_STORE }));
    expect(err.message).toContain('auth');
  });

  it('rejects an auth section with nothing usable in it', () => {
    const err = configError(() => validateConfig({ auth: { bearer_tokens: [] }, stores: FS_STORE }));
    expect(err.message).toContain('auth');
  });

  it.each([
    { bearer_tokens: ['a', 'b'] },
    { public_key: 'pk' },
    { keys: [{ id: 'k1', public_key: 'pk' }] },
  ])('accepts auth configured as %j', (auth) => {
    expect(() => validateConfig({ auth, stores: FS_STORE })).not.toThrow();
  });

  it('requires disk_path when max_disk is set', () => {
    const err = configError(() => validateConfig({ auth: AUTH, cache: { max_disk: '1GB' }, stores: FS_STORE }));
    expect(err.message).toContain('cache.disk_path');
  });

  it('rejects store ids with unsafe characters', () => {
    const err = configError(() => validateConfig({ auth: AUTH, stores: { 'a/b': { type: 'fs', root: '/x' } } }));
    expect(err.message).toContain('stores.a/b');
  });

  it('rejects a bad listen address, naming listen', () => {
    const err = configError(() => validateConfig({ auth: AUTH, listen: 'abc', stores: FS_STORE }));
    expect(err.message).toContain('listen');
  });

  it('rejects a non-object config', () => {
    configError(() => validateConfig('just a string'));
    configError(() => validateConfig(null));
  });
});

describe('configFromEnv', () => {
  it('uses the whole YAML from CACHEGATE_CONFIG', () => {
    const raw = configFromEnv({ CACHEGATE_CONFIG: FULL_YAML, CACHEGATE__LISTEN: '1.2.3.4:1' });
    const c = validateConfig(raw);
    expect(c.listen).toBe('0.0.0.0:9090');
    expect(c.cache.max_memory).toBe(64 * 2 ** 20);
    expect(c.stores.media).toMatchObject({ type: 's3', endpoint: 'localhost:9000', allow_http: true });
  });

  it('reports invalid YAML in CACHEGATE_CONFIG', () => {
    const err = configError(() => configFromEnv({ CACHEGATE_CONFIG: 'a: [' }));
    expect(err.message).toContain('CACHEGATE_CONFIG');
  });

  it('builds the config from flat CACHEGATE__ variables', () => {
    const raw = configFromEnv({
      CACHEGATE__LISTEN: '127.0.0.1:7070',
      CACHEGATE__AUTH__BEARER_TOKEN: 'env-token',
      CACHEGATE__CACHE__MAX_MEMORY: '1GiB',
      CACHEGATE__STORES__MEDIA__TYPE: 's3',
      CACHEGATE__STORES__MEDIA__BUCKET: 'media-bucket',
      CACHEGATE__STORES__MEDIA__ENDPOINT: 'localhost:9000',
      CACHEGATE__STORES__MEDIA__ALLOW_HTTP: 'true',
    });
    const c = validateConfig(raw);
    expect(c.listen).toBe('127.0.0.1:7070');
    expect(c.auth.bearer_token).toBe('env-token');
    expect(c.cache.max_memory).toBe(2 ** 30);
    expect(resolveConfig(c).maxObjectBytes).toBe(2 ** 30);
    expect(c.stores.media).toMatchObject({ type: 's3', bucket: 'media-bucket', endpoint: 'localhost:9000' });
    expect(c.stores.media?.type === 's3' && c.stores.media.allow_http).toBe(true);
  });

  it('treats allow_http=false from env as false', () => {
    const c = validateConfig(
      configFromEnv({
        CACHEGATE__AUTH__BEARER_TOKEN: 't',
        CACHEGATE__STORES__MEDIA__TYPE: 's3',
        CACHEGATE__STORES__MEDIA__BUCKET: 'b',
        CACHEGATE__STORES__MEDIA__ALLOW_HTTP: 'false',
      }),
    );
    expect(c.stores.media?.type === 's3' && c.stores.media.allow_http).toBe(false);
  });

  it('matches variable names case-insensitively', () => {
    const raw = configFromEnv({
      cachegate__listen: '10.0.0.1:81',
      Cachegate__Auth__Bearer_Token: 'mixed',
      CACHEGATE__STORES__LOCAL__TYPE: 'fs',
      cachegate__stores__local__root: '/data',
    });
    const c = validateConfig(raw);
    expect(c.listen).toBe('10.0.0.1:81');
    expect(c.auth.bearer_token).toBe('mixed');
    expect(c.stores.local).toEqual({ type: 'fs', root: '/data' });
  });

  it('lowercases store ids', () => {
    const c = validateConfig(
      configFromEnv({
        CACHEGATE__AUTH__BEARER_TOKEN: 't',
        CACHEGATE__STORES__Media__TYPE: 'fs',
        CACHEGATE__STORES__MEDIA__ROOT: '/m',
      }),
    );
    expect(Object.keys(c.stores)).toEqual(['media']);
    expect(c.stores.media).toEqual({ type: 'fs', root: '/m' });
  });

  it('keeps values as given (only names are case-insensitive)', () => {
    const raw = configFromEnv({ CACHEGATE__AUTH__BEARER_TOKEN: 'MiXeD-CaSe' }) as { auth: { bearer_token: string } };
    expect(raw.auth.bearer_token).toBe('MiXeD-CaSe');
  });

  it('splits comma-separated lists for bearer_tokens', () => {
    const c = validateConfig(
      configFromEnv({
        CACHEGATE__AUTH__BEARER_TOKENS: 'a,b , c',
        CACHEGATE__STORES__LOCAL__TYPE: 'fs',
        CACHEGATE__STORES__LOCAL__ROOT: '/d',
      }),
    );
    expect(c.auth.bearer_tokens).toEqual(['a', 'b', 'c']);
  });

  it('makes arrays from numeric name segments, in numeric order', () => {
    const raw = configFromEnv({
      CACHEGATE__AUTH__KEYS__10__ID: 'k10',
      CACHEGATE__AUTH__KEYS__10__PUBLIC_KEY: 'pk10',
      CACHEGATE__AUTH__KEYS__0__ID: 'k0',
      CACHEGATE__AUTH__KEYS__0__PUBLIC_KEY: 'pk0',
      CACHEGATE__AUTH__KEYS__2__ID: 'k2',
      CACHEGATE__AUTH__KEYS__2__PUBLIC_KEY: 'pk2',
      CACHEGATE__STORES__LOCAL__TYPE: 'fs',
      CACHEGATE__STORES__LOCAL__ROOT: '/d',
    });
    const c = validateConfig(raw);
    expect(c.auth.keys).toEqual([
      { id: 'k0', public_key: 'pk0' },
      { id: 'k2', public_key: 'pk2' },
      { id: 'k10', public_key: 'pk10' },
    ]);
  });

  it('ignores unrelated environment variables', () => {
    const raw = configFromEnv({
      PATH: '/usr/bin',
      HOME: '/root',
      CACHEGATE_LISTEN: 'x',
      CACHEGATEX__LISTEN: 'y',
      MY_CACHEGATE__LISTEN: 'z',
      CACHEGATE__LISTEN: '127.0.0.1:1',
    });
    expect(raw).toEqual({ listen: '127.0.0.1:1' });
  });

  it('gives an empty object when nothing is set', () => {
    expect(configFromEnv({})).toEqual({});
  });

  it('falls back to flat variables when CACHEGATE_CONFIG is blank', () => {
    expect(configFromEnv({ CACHEGATE_CONFIG: '  ', CACHEGATE__LISTEN: ':1' })).toEqual({ listen: ':1' });
  });

  it.each(['CACHEGATE____PROTO____POLLUTED', 'CACHEGATE__AUTH____PROTO____POLLUTED', 'CACHEGATE__STORES____proto____TYPE'])(
    'rejects a __proto__ segment in %s without polluting prototypes',
    (name) => {
      configError(() => configFromEnv({ [name]: 'yes' }));
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(({} as Record<string, unknown>).type).toBeUndefined();
    },
  );

  it.each(['CACHEGATE__CONSTRUCTOR__X', 'CACHEGATE__AUTH__PROTOTYPE', 'CACHEGATE__STORES__CONSTRUCTOR__TYPE'])(
    'rejects the reserved segment in %s',
    (name) => {
      const err = configError(() => configFromEnv({ [name]: 'v' }));
      expect(err.message).toContain(name);
    },
  );

  it('rejects empty name segments', () => {
    configError(() => configFromEnv({ CACHEGATE__AUTH____BEARER_TOKEN: 't' }));
  });

  it('rejects a name that is both a value and a section', () => {
    const err = configError(() => configFromEnv({ CACHEGATE__AUTH: 'x', CACHEGATE__AUTH__BEARER_TOKEN: 't' }));
    expect(err.message).toContain('auth');
  });

  it('is what loadConfig uses for the env source', async () => {
    const loaded = await loadConfig(
      { kind: 'env' },
      { CACHEGATE__AUTH__BEARER_TOKEN: 't', CACHEGATE__STORES__LOCAL__TYPE: 'fs', CACHEGATE__STORES__LOCAL__ROOT: '/d' },
    );
    expect(loaded.source).toEqual({ kind: 'env' });
    expect(loaded.config.stores.local).toEqual({ type: 'fs', root: '/d' });
    expect(loaded.generatedBearerToken).toBeUndefined();
  });
});

describe('parseListen', () => {
  it.each<[string, { host: string; port: number }]>([
    ['0.0.0.0:8080', { host: '0.0.0.0', port: 8080 }],
    ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
    [':9000', { host: '0.0.0.0', port: 9000 }],
    ['[::1]:8080', { host: '::1', port: 8080 }],
    ['[::]:443', { host: '::', port: 443 }],
    ['localhost:3000', { host: 'localhost', port: 3000 }],
    ['8080', { host: '0.0.0.0', port: 8080 }],
    ['0.0.0.0:65535', { host: '0.0.0.0', port: 65535 }],
  ])('parses %s', (listen, expected) => {
    expect(parseListen(listen)).toEqual(expected);
  });

  it.each(['abc', 'host:99999', '65536', 'host:', 'host:port', '::1:8080', '', '1.2.3.4:-1'])('rejects %j', (listen) => {
    expect(() => parseListen(listen)).toThrow();
  });
});

describe('embedded default', () => {
  it('serves ./data as the fs store "local" on loopback with a generated bearer token', async () => {
    const loaded = await loadConfig({ kind: 'default' }, {});
    const token = loaded.generatedBearerToken;
    expect(loaded.source).toEqual({ kind: 'default' });
    expect(loaded.config.listen).toBe('127.0.0.1:8080');
    expect(loaded.config.stores).toEqual({ local: { type: 'fs', root: './data' } });
    expect(typeof token).toBe('string');
    expect(token!.length).toBeGreaterThanOrEqual(32);
    expect(loaded.config.auth.bearer_token).toBe(token);
  });

  it('generates a different token on every load', async () => {
    const a = await loadConfig({ kind: 'default' }, {});
    const b = await loadConfig({ kind: 'default' }, {});
    expect(a.generatedBearerToken).not.toBe(b.generatedBearerToken);
  });

  it('embeddedDefault validates with the given token', () => {
    const c = validateConfig(embeddedDefault('given-token'));
    expect(c.auth.bearer_token).toBe('given-token');
    expect(c.stores.local).toEqual({ type: 'fs', root: './data' });
  });
});
