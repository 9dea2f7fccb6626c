/**
 * The bench's objects: deterministic bytes from a key, so the origin upload, the raw ceiling
 * server and the byte checks all agree without shipping the bytes between processes.
 */
import { createHash } from 'node:crypto';

export const KIB = 1024;
export const MIB = 1024 * KIB;
export const GIB = 1024 * MIB;

/** The bucket on the origin; also the gateway's store id, so every peer serves `/bench/<key>`. */
export const BUCKET = 'bench';

/** The bytes of an object: xorshift32 seeded from the key, so they do not compress or repeat. */
export function objectBytes(key, size) {
  const seed = createHash('sha256').update(key).digest().readUInt32LE(0) || 1;
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = seed;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return Buffer.from(words.buffer, 0, size);
}

/** sha256 hex of a buffer, to check what a peer served. */
export function sha256(buf) {
  return createHash('sha256').update(buf).digest('hex');
}

/** Human size: 4 KiB, 1 MiB, 1 GiB. */
export function formatSize(bytes) {
  if (bytes >= GIB && bytes % GIB === 0) return `${bytes / GIB} GiB`;
  if (bytes >= MIB && bytes % MIB === 0) return `${bytes / MIB} MiB`;
  if (bytes >= KIB && bytes % KIB === 0) return `${bytes / KIB} KiB`;
  return `${bytes} B`;
}

/** The key sets every workload uses. */
export function keyPlan({ coldKeys, coldWarm = Math.min(200, coldKeys), runs, diskObjects, herdRuns }) {
  return {
    hot4k: { key: 'hot/4k.bin', size: 4 * KIB },
    hot1m: { key: 'hot/1m.bin', size: MIB },
    /** One prefix per run: a run's keys are cold in every peer the first time they are asked. */
    cold: {
      prefix: 'cold/',
      size: 4 * KIB,
      perRun: coldKeys,
      runs,
      key: (run, i) => `cold/r${run}/${i}.bin`,
      /**
       * Asked once by every peer before the measured runs (JIT, connection pools to the origin).
       * The first `freshCount` of them are measured too: a fresh process's first misses.
       */
      warmCount: coldWarm,
      freshCount: Math.min(coldKeys, coldWarm),
      warmKey: (i) => `cold/warm/${i}.bin`,
    },
    disk: { prefix: 'disk/', size: MIB, count: diskObjects, key: (i) => `disk/${i}.bin` },
    herd: { size: 64 * KIB, runs: herdRuns, key: (peer, run) => `herd/${peer}/${run}.bin` },
  };
}
