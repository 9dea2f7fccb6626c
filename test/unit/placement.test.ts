import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createDiskTier, type DiskTier } from '../../src/cache/disk-tier.js';
import { createMemoryTier } from '../../src/cache/memory-tier.js';
import type { CacheLimits } from '../../src/config/resolve.js';
import { Placement } from '../../src/core/placement.js';

const MiB = 1024 * 1024;
const S = 8 * MiB;

function limits(disk: boolean): CacheLimits {
  return {
    sliceBytes: S,
    maxObjectBytes: 1024 * MiB,
    maxFillBytes: 2 * S,
    memory: { maxBytes: 64 * MiB, maxEntryBytes: 64 * MiB },
    disk: disk ? { dir: '', maxBytes: 2048 * MiB, maxEntryBytes: 2048 * MiB } : undefined,
  };
}

describe('Placement: where bodies go', () => {
  let dir: string;
  let disk: DiskTier;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-placement-'));
    disk = createDiskTier({ dir, maxBytes: 2048 * MiB });
    await disk.start();
  });
  afterAll(async () => {
    await disk.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('with a disk tier: small objects to memory and disk, slices to disk only, and only those fills reuse buffers', () => {
    const memory = createMemoryTier({ maxBytes: 64 * MiB });
    const p = new Placement(limits(true), memory, disk);
    expect(p.forFill(MiB, MiB).map((t) => t.name)).toEqual(['memory', 'disk']);
    expect(p.forFill(S, S).map((t) => t.name)).toEqual(['memory', 'disk']);
    expect(p.forFill(S + 1, S).map((t) => t.name)).toEqual(['disk']);
    expect(p.forPut(S + 1, S).map((t) => t.name)).toEqual(['disk']);
    expect(p.forPut(MiB, MiB).map((t) => t.name)).toEqual(['memory', 'disk']);
    expect(p.slicesOnDiskOnly(S + 1)).toBe(true);
    expect(p.slicesOnDiskOnly(S)).toBe(false);
    // Past max_object_size nothing is cached, so no fill commits and none reuses.
    expect(p.forFill(2048 * MiB, S)).toEqual([]);
    expect(p.slicesOnDiskOnly(2048 * MiB)).toBe(false);
    // The metadata entry of a sliced object is kept in both tiers.
    expect(p.forMeta(S + 1).map((t) => t.name)).toEqual(['memory', 'disk']);
  });

  it('without a disk tier: slices of fills in memory (their buffers become the entries), a PUT of a sliced object not cached', () => {
    const memory = createMemoryTier({ maxBytes: 64 * MiB });
    const p = new Placement(limits(false), memory, undefined);
    expect(p.forFill(S + 1, S).map((t) => t.name)).toEqual(['memory']);
    expect(p.slicesOnDiskOnly(S + 1)).toBe(false);
    expect(p.forPut(S + 1, S)).toEqual([]);
    expect(p.forPut(MiB, MiB).map((t) => t.name)).toEqual(['memory']);
  });
});
