/**
 * The three real backends as a store with id `media`, for suites that run once per backend:
 * a temporary directory, a bucket on a fresh s3rver, a container on a fresh Azurite.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createAzureStore } from '../../src/stores/azure.js';
import { createFsStore } from '../../src/stores/fs.js';
import { createS3Store } from '../../src/stores/s3.js';
import type { ObjectStore } from '../../src/stores/types.js';
import { startAzurite } from './azurite.js';
import { s3StoreConfig, startS3rver } from './s3rver.js';

export interface Backend {
  name: 'fs' | 's3' | 'azure';
  make(): Promise<{ store: ObjectStore; stop(): Promise<void> }>;
}

export const BACKENDS: readonly Backend[] = [
  {
    name: 'fs',
    async make() {
      const dir = await mkdtemp(path.join(tmpdir(), 'cg-backend-'));
      return { store: createFsStore('media', { root: dir }), stop: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 's3',
    async make() {
      const srv = await startS3rver({ buckets: ['media'] });
      const store = createS3Store('media', s3StoreConfig(srv, 'media'));
      return { store, stop: async () => (await store.close(), await srv.stop()) };
    },
  },
  {
    name: 'azure',
    async make() {
      const az = await startAzurite({ containers: ['media'] });
      return { store: createAzureStore('media', { type: 'azure', container: 'media', connection_string: az.connectionString }), stop: () => az.stop() };
    },
  },
];
