/**
 * The tiered-cache contract, run against the memory tier and the disk tier through the one
 * CacheTier interface.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createDiskTier } from '../../src/cache/disk-tier.js';
import { createMemoryTier } from '../../src/cache/memory-tier.js';
import { describeCacheTierContract } from './cache-tier-contract.js';

describeCacheTierContract('memory', {
  overheadBytes: 3000,
  async make(maxBytes, maxEntryBytes) {
    const tier = createMemoryTier({ maxBytes, maxEntryBytes: maxEntryBytes ?? maxBytes });
    return { tier, settled: async () => {} };
  },
  async cleanup() {},
});

const dirs: string[] = [];
describeCacheTierContract('disk', {
  overheadBytes: 300,
  files: true,
  async make(maxBytes, maxEntryBytes) {
    const dir = await mkdtemp(path.join(tmpdir(), 'cg-disk-contract-'));
    dirs.push(dir);
    const tier = createDiskTier({ dir, maxBytes, maxEntryBytes: maxEntryBytes ?? maxBytes });
    await tier.start();
    await tier.scanned();
    return { tier, settled: () => tier.flushed() };
  },
  async cleanup() {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  },
});
