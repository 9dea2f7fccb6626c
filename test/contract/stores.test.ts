/**
 * The store contract against every driver, each on a real backend: a temp dir, s3rver and Azurite.
 * Plus the fs-only guarantee that a key never reads or writes outside the store root.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { S3StoreConfig } from '../../src/config/schema.js';
import { KeyRejectedError, StoreError } from '../../src/errors.js';
import { createAzureStore } from '../../src/stores/azure.js';
import { createFsStore } from '../../src/stores/fs.js';
import { createS3Store } from '../../src/stores/s3.js';
import type { ObjectStore } from '../../src/stores/types.js';
import { startAzurite } from '../helpers/azurite.js';
import { startS3rver } from '../helpers/s3rver.js';
import { describeStoreContract } from './store-contract.js';

const BUCKET = 'contract-bucket';
const CONTAINER = 'contract-container';
/** Few enough that bodies leaking their sockets would hang the follow-up request. */
const S3_MAX_SOCKETS = 8;

describeStoreContract(
  'fs',
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cachegate-contract-fs-'));
    // A root that is a regular file: creating or resolving it fails, which must not read as "missing".
    const notADir = join(dir, 'not-a-dir');
    await writeFile(notADir, 'a file, not a directory');
    const store = createFsStore('fs-contract', { root: join(dir, 'root') });
    const brokenStore = createFsStore('fs-broken', { root: notADir });
    return {
      store,
      brokenStore,
      async teardown() {
        await Promise.all([store.close(), brokenStore.close()]);
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
  { supportsContentType: false },
);

describeStoreContract(
  's3',
  async () => {
    const srv = await startS3rver({ buckets: [BUCKET] });
    const config = (bucket: string): S3StoreConfig => ({
      type: 's3',
      bucket,
      region: srv.region,
      access_key: srv.accessKeyId,
      secret_key: srv.secretAccessKey,
      endpoint: srv.endpoint,
      allow_http: true,
      max_sockets: S3_MAX_SOCKETS,
    });
    let store: ObjectStore | undefined;
    let brokenStore: ObjectStore | undefined;
    const teardown = async (): Promise<void> => {
      await Promise.all([store?.close(), brokenStore?.close()]);
      await srv.stop();
    };
    try {
      store = createS3Store('s3-contract', config(BUCKET));
      brokenStore = createS3Store('s3-broken', config('no-such-bucket'));
      return { store, brokenStore, teardown };
    } catch (err) {
      await teardown();
      throw err;
    }
  },
  { supportsContentType: true, emulatorGaps: ['range-end-zero'] },
);

describeStoreContract(
  'azure',
  async () => {
    const az = await startAzurite({ containers: [CONTAINER] });
    try {
      const store = createAzureStore('azure-contract', {
        type: 'azure',
        container: CONTAINER,
        connection_string: az.connectionString,
      });
      const brokenStore = createAzureStore('azure-broken', {
        type: 'azure',
        container: 'no-such-container',
        connection_string: az.connectionString,
      });
      return {
        store,
        brokenStore,
        async teardown() {
          await Promise.all([store.close(), brokenStore.close()]);
          await az.stop();
        },
      };
    } catch (err) {
      await az.stop();
      throw err;
    }
  },
  { supportsContentType: true },
);

describe('fs store: keys never leave the root', () => {
  const SECRET = Buffer.from('outside the root: must never be served\n');
  let dir: string;
  let root: string;
  let outside: string;
  let store: ObjectStore;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cachegate-contract-escape-'));
    root = join(dir, 'root');
    outside = join(dir, 'outside');
    await mkdir(join(root, 'a'), { recursive: true });
    await mkdir(outside);
    await writeFile(join(outside, 'secret.txt'), SECRET);
    await writeFile(join(dir, 'x'), SECRET);
    await symlink(outside, join(root, 'link'), 'dir');
    await symlink(join(outside, 'secret.txt'), join(root, 'file-link'), 'file');
    store = createFsStore('fs-escape', { root });
  });

  afterAll(async () => {
    await store?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /**
   * Resolves to undefined or rejects with KeyRejectedError (a 4xx: the key is the client's doing,
   * not a store failure); anything else (bytes, metadata) fails.
   */
  async function expectNothing(op: Promise<unknown>, what: string): Promise<void> {
    let value: unknown;
    try {
      value = await op;
    } catch (err) {
      expect(err, what).toBeInstanceOf(KeyRejectedError);
      return;
    }
    if (value && typeof value === 'object' && 'body' in value) (value as { body: Readable }).body.destroy();
    expect(value, `${what} must not reach outside the root`).toBeUndefined();
  }

  it('a symlinked directory pointing outside serves nothing', async () => {
    await expectNothing(store.get('link/secret.txt'), "get('link/secret.txt')");
    await expectNothing(store.get('link/secret.txt', { range: { start: 0, end: 3 } }), 'ranged get through the link');
    await expectNothing(store.head('link/secret.txt'), "head('link/secret.txt')");
  });

  it('a symlinked file pointing outside serves nothing', async () => {
    await expectNothing(store.get('file-link'), "get('file-link')");
    await expectNothing(store.head('file-link'), "head('file-link')");
    // Writing the link's key may replace the link itself, but never the file it points at.
    await store.put('file-link', Readable.from([Buffer.from('overwritten')])).catch(() => undefined);
    expect((await readFile(join(outside, 'secret.txt'))).equals(SECRET)).toBe(true);
  });

  it("'..' and absolute keys never read outside", async () => {
    for (const key of ['a/../../x', '../x', '..', 'a/../../outside/secret.txt', '/etc/passwd', 'a//../../x', './../x']) {
      await expectNothing(store.get(key), `get('${key}')`);
      await expectNothing(store.head(key), `head('${key}')`);
    }
  });

  it('writes and deletes through a link or ../ never touch files outside', async () => {
    for (const key of ['link/secret.txt', 'link/new.txt', 'a/../../x', '../outside/new.txt']) {
      await store.put(key, Readable.from([Buffer.from('overwritten')])).then(
        () => undefined,
        (err: unknown) => expect(err, `put('${key}')`).toBeInstanceOf(KeyRejectedError),
      );
      await store.delete(key).catch((err: unknown) => expect(err, `delete('${key}')`).toBeInstanceOf(KeyRejectedError));
    }
    expect((await readFile(join(outside, 'secret.txt'))).equals(SECRET)).toBe(true);
    expect((await readFile(join(dir, 'x'))).equals(SECRET)).toBe(true);
    expect((await readdir(outside)).sort()).toEqual(['secret.txt']);
    expect((await readdir(dir)).sort()).toEqual(['outside', 'root', 'x']);
  });

  it('a failed put leaves no temporary file behind', async () => {
    let sent = false;
    const failing = new Readable({
      read() {
        if (!sent) {
          sent = true;
          this.push(Buffer.alloc(64 * 1024, 1));
          return;
        }
        process.nextTick(() => this.destroy(new Error('upstream failed')));
      },
    });
    await expect(store.put('tmp-check.bin', failing)).rejects.toBeInstanceOf(StoreError);
    const tmpDir = join(root, '.cachegate-tmp');
    const leftovers = await readdir(tmpDir).catch(() => []);
    expect(leftovers).toEqual([]);
  });
});
