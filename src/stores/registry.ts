/**
 * The store registry: drivers keyed by `type` (matching the config's discriminated union), and
 * the set of configured stores keyed by bucket id.
 */
import type { StoreConfig } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import { createAzureStore } from './azure.js';
import { createFsStore } from './fs.js';
import { createS3Store } from './s3.js';
import type { ObjectStore } from './types.js';

export interface StoreFactoryOptions {
  storeTimeoutMs: number;
}

type Driver<T extends StoreConfig['type']> = (
  id: string,
  config: Extract<StoreConfig, { type: T }>,
  options: StoreFactoryOptions,
) => ObjectStore;

/** One driver per store type. Adding a backend means adding a file and a line here. */
export const STORE_DRIVERS: { [T in StoreConfig['type']]: Driver<T> } = {
  s3: (id, config) => createS3Store(id, config),
  azure: (id, config, options) => createAzureStore(id, config, { tryTimeoutMs: options.storeTimeoutMs }),
  fs: (id, config) => createFsStore(id, config),
};

/** The configured stores, by bucket id. */
export interface StoreRegistry {
  get(id: string): ObjectStore | undefined;
  ids(): string[];
  closeAll(): Promise<void>;
}

/** Build every configured store. Throws a GW_ERR_CONFIG naming the store on a bad store config. */
export function createStoreRegistry(stores: Record<string, StoreConfig>, options: StoreFactoryOptions): StoreRegistry {
  const byId = new Map<string, ObjectStore>();
  for (const [id, config] of Object.entries(stores)) {
    const driver = STORE_DRIVERS[config.type] as Driver<typeof config.type>;
    try {
      byId.set(id, driver(id, config, options));
    } catch (err) {
      throw new GatewayError('GW_ERR_CONFIG', `invalid config:\n  stores.${id}: ${(err as Error).message}`, { cause: err });
    }
  }
  return fromStores(byId);
}

/** A registry over stores built elsewhere (tests, embedding). */
export function fromStores(byId: Map<string, ObjectStore>): StoreRegistry {
  return {
    get: (id) => byId.get(id),
    ids: () => [...byId.keys()],
    closeAll: async () => {
      await Promise.allSettled([...byId.values()].map((s) => s.close()));
    },
  };
}
