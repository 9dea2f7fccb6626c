/**
 * The tiered-cache contract, run against the memory tier and the disk tier.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createDiskTier } from '../../src/cache/disk-tier.js';
import { createMemoryTier } from '../../src/cache/memory-tier.js';
import { describeCacheTierContract } from './cache-tier-contract.js';

describeCacheTierContract('memory', {
  overheadBytes: 700,
  async make(maxBytes, maxEntryBytes) {
    const tier = createMemoryTier({ maxBytes, maxEntryBytes: maxEntryBytes ?? maxBytes });
    return {
      put: async (key, meta, body) => void tier.set(key, { meta, body }),
      get: async (key) => tier.get(key)?.body,
      delete: async (key) => void tier.delete(key),
      stats: () => tier.stats(),
      sizes: () => tier.sizes(),
    };
  },
  async cleanup() {},
});

const dirs: string[] = [];
describeCacheTierContract('disk', {
  overheadBytes: 300,
  async make(maxBytes, maxEntryBytes) {
    const dir = await mkdtemp(path.join(tmpdir(), 'cg-disk-contract-'));
    dirs.push(dir);
    const tier = createDiskTier({ dir, maxBytes, maxEntryBytes: maxEntryBytes ?? maxBytes });
    await tier.start();
    await tier.scanned();
    return {
      put: async (key, meta, body) => {
        tier.store(key, meta, body);
        await tier.flushed();
      },
      get: async (key) => {
        const hit = await tier.lookup(key);
        if (!hit) return undefined;
        if (hit.kind === 'buffer') return hit.body;
        const chunks: Buffer[] = [];
        for await (const c of hit.open() as AsyncIterable<Buffer>) chunks.push(c);
        return Buffer.concat(chunks);
      },
      delete: async (key) => {
        tier.delete(key);
        await tier.flushed();
      },
      stats: () => tier.stats(),
      sizes: () => tier.sizes(),
    };
  },
  async cleanup() {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  },
});
