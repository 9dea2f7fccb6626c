/**
 * Every limit derived from the config, in one place: what the tiers, the fills and the object
 * service are sized by. `gateway.ts` only passes these on.
 */
import type { Config } from './schema.js';

/** Default `cache.slice_size`, as nginx's `slice 8m`. */
export const DEFAULT_SLICE_BYTES = 8 * 2 ** 20;
/** The default fill budget is this share of `max_memory`, and never less than two slices. */
const FILL_BUDGET_SHARE = 4;
const MIN_FILL_BUDGET_SLICES = 2;
/** Per-entry room beyond a slice's body (metadata, key, overhead). */
const ENTRY_SLACK_BYTES = 64 * 1024;

/** The limits the cache runs on, all in bytes. */
export interface CacheLimits {
  /** Objects larger than this are cached as aligned slices of this size. */
  sliceBytes: number;
  /** Objects up to this size are cached (in slices when larger than `sliceBytes`); larger ones are served uncached. */
  maxObjectBytes: number;
  /** Bytes that all fills in flight may hold together. */
  maxFillBytes: number;
  memory: { maxBytes: number; maxEntryBytes: number };
  /** Absent when there is no disk tier. */
  disk: { dir: string; maxBytes: number; maxEntryBytes: number } | undefined;
}

/**
 * Derive every cache limit from a validated config.
 * - `slice_size` defaults to 8 MiB.
 * - `max_object_size` unset (0): `max_disk` when there is a disk tier, else `max_memory` (as in cachegate).
 * - `max_fill_memory` unset (0): a quarter of `max_memory`, at least two slices.
 * - an entry (a whole small object or one slice) is at most a slice, and at most the tier.
 */
export function resolveConfig(config: Config): CacheLimits {
  const c = config.cache;
  const sliceBytes = c.slice_size > 0 ? c.slice_size : DEFAULT_SLICE_BYTES;
  const hasDisk = c.max_disk > 0 && c.disk_path !== undefined;
  const maxObjectBytes = c.max_object_size > 0 ? c.max_object_size : hasDisk ? c.max_disk : c.max_memory;
  const maxFillBytes =
    c.max_fill_memory > 0 ? c.max_fill_memory : Math.max(Math.floor(c.max_memory / FILL_BUDGET_SHARE), MIN_FILL_BUDGET_SLICES * sliceBytes);
  return {
    sliceBytes,
    maxObjectBytes,
    maxFillBytes,
    // An entry is charged its body plus its overhead (cache/memory-tier.ts): room for a slice and that.
    memory: { maxBytes: c.max_memory, maxEntryBytes: Math.min(c.max_memory, sliceBytes + ENTRY_SLACK_BYTES) },
    disk: hasDisk ? { dir: c.disk_path!, maxBytes: c.max_disk, maxEntryBytes: Math.min(c.max_disk, sliceBytes + ENTRY_SLACK_BYTES) } : undefined,
  };
}
