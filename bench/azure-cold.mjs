#!/usr/bin/env node
/**
 * Cold misses on an Azure store backed by Azurite: the gateway's CPU per miss, for one or more
 * builds measured alternately in one run (so a before/after pair shares the machine's load).
 *
 *   node bench/azure-cold.mjs [distDir ...]      default: this checkout's dist/
 *   AZ_RUNS=3 AZ_KEYS=2048 AZ_WARM=512 AZ_CONCURRENCY=64 AZ_NODE_ARGS='--cpu-prof ...'
 *
 * Each run starts a fresh gateway (pinned to core 0; Azurite and this client share core 1),
 * warms it with AZ_WARM cold misses, then sends AZ_KEYS GETs of distinct 4 KiB blobs, 64 at a
 * time, and reads the gateway's user+system ticks from /proc before and after. Reports the
 * median µs of gateway CPU per miss, per build.
 */
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { Pool } from 'undici';
import { groupCpuMs } from './lib/cpu.mjs';
import { cleanupAll, freePort, makeTempDir, startChild } from './lib/procs.mjs';

const RUNS = Number(process.env.AZ_RUNS ?? 3);
const KEYS = Number(process.env.AZ_KEYS ?? 2048);
const WARM = Number(process.env.AZ_WARM ?? 512);
const CONCURRENCY = Number(process.env.AZ_CONCURRENCY ?? 64);
/** Extra node flags for the gateway, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`. */
const NODE_ARGS = (process.env.AZ_NODE_ARGS ?? '').split(' ').filter(Boolean);
const SIZE = 4096;
const TOKEN = 'bench-token-0123456789abcdef';
const ACCOUNT = 'devstoreaccount1';
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const ROOT = path.resolve(import.meta.dirname, '..');
const builds = process.argv.slice(2).length ? process.argv.slice(2).map((d) => path.resolve(d)) : [path.join(ROOT, 'dist')];

async function main() {
  const dir = makeTempDir('cg-az-cold-');
  const azurite = await startChild({
    name: 'azurite',
    cmd: process.execPath,
    args: [createRequire(import.meta.url).resolve('azurite/dist/src/blob/main.js'), '--blobHost', '127.0.0.1', '--blobPort', '0', '--inMemoryPersistence', '--silent', '--skipApiVersionCheck', '--loose', '--disableTelemetry'],
    cwd: dir,
    core: 1,
    ready: (out) => /successfully listens on https?:\/\/[^\s:]+:(\d+)/.exec(out)?.[1],
  });
  const endpoint = `http://127.0.0.1:${azurite.info}/${ACCOUNT}`;
  const connectionString = `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${KEY};BlobEndpoint=${endpoint};`;
  const container = BlobServiceClient.fromConnectionString(connectionString).getContainerClient('bench');
  await container.create();

  const slots = builds.length * RUNS;
  const perSlot = WARM + KEYS;
  console.log(`uploading ${slots * perSlot} blobs of ${SIZE} bytes`);
  const body = Buffer.alloc(SIZE, 7);
  let next = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < slots * perSlot) {
        const i = next++;
        await container.getBlockBlobClient(`cold/${i}.bin`).upload(body, SIZE);
      }
    }),
  );

  const figures = builds.map(() => []);
  let slot = 0;
  for (let run = 0; run < RUNS; run++) {
    for (let b = 0; b < builds.length; b++) {
      const base = slot++ * perSlot;
      const port = await freePort();
      const file = path.join(dir, `gw-${b}-${run}.yaml`);
      writeFileSync(
        file,
        [
          `listen: "127.0.0.1:${port}"`,
          'auth:',
          `  bearer_token: "${TOKEN}"`,
          'cache:',
          '  max_memory: "512MiB"',
          'stores:',
          '  bench:',
          '    type: azure',
          '    container: bench',
          `    connection_string: "${connectionString}"`,
          '',
        ].join('\n'),
      );
      const gw = await startChild({
        name: `gateway-${b}`,
        cmd: process.execPath,
        args: [...NODE_ARGS, path.join(builds[b], 'main.js'), '--config', file],
        cwd: dir,
        core: 0,
        env: { PATH: process.env.PATH, LOG_LEVEL: 'warn', NODE_NO_WARNINGS: '1' },
        probe: () => fetch(`http://127.0.0.1:${port}/health`).then((r) => r.status < 500, () => false),
      });
      const pool = new Pool(`http://127.0.0.1:${port}`, { connections: CONCURRENCY });
      try {
        await fetchAll(pool, base, WARM);
        const before = groupCpuMs(gw.pid);
        const t0 = performance.now();
        await fetchAll(pool, base + WARM, KEYS);
        const wallMs = performance.now() - t0;
        const cpuUs = ((groupCpuMs(gw.pid) - before) * 1000) / KEYS;
        figures[b].push(cpuUs);
        console.log(`${new Date().toISOString().slice(11, 19)} run ${run + 1}/${RUNS} ${builds[b]}: ${cpuUs.toFixed(0)} µs CPU per miss, ${((KEYS / wallMs) * 1000).toFixed(0)} misses/s`);
      } finally {
        await pool.destroy();
        await gw.stop();
      }
    }
  }
  for (let b = 0; b < builds.length; b++) {
    const sorted = [...figures[b]].sort((x, y) => x - y);
    console.log(`median ${builds[b]}: ${sorted[Math.floor(sorted.length / 2)].toFixed(0)} µs CPU per cold miss (runs: ${figures[b].map((f) => f.toFixed(0)).join(', ')})`);
  }
}

/** GET `count` distinct keys from `first` on, CONCURRENCY at a time; every answer must be a 4 KiB 200. */
async function fetchAll(pool, first, count) {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) {
        const i = first + next++;
        const res = await pool.request({ method: 'GET', path: `/bench/cold/${i}.bin`, headers: { authorization: `Bearer ${TOKEN}` } });
        const bytes = Buffer.concat(await res.body.toArray());
        if (res.statusCode !== 200 || bytes.length !== SIZE) throw new Error(`key ${i}: ${res.statusCode}, ${bytes.length} bytes`);
      }
    }),
  );
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(cleanupAll);
