/**
 * Real store servers behind the fault proxy, for the fault-injection suites: s3rver and Azurite,
 * each with stores reached through the proxy (counted, faulted on command) and one that goes
 * around it ("directly in the store").
 */
import { createAzureStore } from '../../src/stores/azure.js';
import { createS3Store } from '../../src/stores/s3.js';
import type { ObjectStore } from '../../src/stores/types.js';
import { startAzurite } from './azurite.js';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';
import { s3StoreConfig, startS3rver } from './s3rver.js';

/** The bucket (s3rver) or container (Azurite) every store of a backend uses. */
export const FAULT_CONTAINER = 'faults';

export interface FaultBackend {
  proxy: FaultProxy;
  /** A store reached through the proxy, under the given id. */
  storeFor(id: string): ObjectStore;
  /** The same bucket, around the proxy and the gateway: "directly in the store". */
  direct: ObjectStore;
  stop(): Promise<void>;
}

export const FAULT_BACKENDS: ReadonlyArray<{ name: string; start(): Promise<FaultBackend> }> = [
  {
    name: 's3rver',
    async start() {
      const srv = await startS3rver({ buckets: [FAULT_CONTAINER] });
      const proxy = await startFaultProxy(srv.endpoint);
      return {
        proxy,
        storeFor: (id) => createS3Store(id, { ...s3StoreConfig(srv, FAULT_CONTAINER, 16), endpoint: proxy.url }),
        direct: createS3Store('direct', s3StoreConfig(srv, FAULT_CONTAINER, 4)),
        async stop() {
          await proxy.close().catch(() => {});
          await srv.stop();
        },
      };
    },
  },
  {
    name: 'Azurite',
    async start() {
      const az = await startAzurite({ containers: [FAULT_CONTAINER] });
      const proxy = await startFaultProxy(`http://127.0.0.1:${az.port}`);
      const through = az.connectionString.replace(az.blobEndpoint, `${proxy.url}/${az.accountName}`);
      return {
        proxy,
        storeFor: (id) => createAzureStore(id, { type: 'azure', container: FAULT_CONTAINER, connection_string: through }),
        direct: createAzureStore('direct', { type: 'azure', container: FAULT_CONTAINER, connection_string: az.connectionString }),
        async stop() {
          await proxy.close().catch(() => {});
          await az.stop();
        },
      };
    },
  },
];
