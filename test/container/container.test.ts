/**
 * The image as a user runs it: the project's own Dockerfile, built unchanged, run on the host
 * network (loopback only) against an fs volume and against s3rver and Azurite on the host.
 * Run by test/container/run.sh (`npm run test:container`), which starts the engine and makes the
 * stand-in base image; never part of `npm test`.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzurite, type AzuriteInstance } from '../helpers/azurite.js';
import { freePort } from '../helpers/free-port.js';
import { startS3rver, type S3rverInstance } from '../helpers/s3rver.js';

const execFileP = promisify(execFile);
const DOCKER = process.env.DOCKER ?? 'docker';
const ROOT = path.resolve(import.meta.dirname, '../..');
const IMAGE = process.env.CACHEGATE_TEST_IMAGE ?? 'cachegate:container-test';
const TOKEN = 'container-test-token';
const AUTH = { authorization: `Bearer ${TOKEN}` };
/** Big enough that a download is still running when `docker stop` arrives at a slow reader. */
const BIG_BYTES = 48 * 2 ** 20;

async function docker(args: string[], timeoutMs = 120_000): Promise<string> {
  const { stdout } = await execFileP(DOCKER, args, { timeout: timeoutMs, maxBuffer: 64 * 2 ** 20 });
  return stdout.trim();
}

/** `docker build` streams its output to a file we print on failure (it is long). */
function dockerBuild(tag: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(DOCKER, ['build', '--network', 'host', '-t', tag, '.'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
    child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`docker build exited ${code}:\n${out}`))));
  });
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const start = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}: ${String(last)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Running {
  id: string;
  url: string;
  logs(): Promise<string>;
}

describe('the cachegate image', () => {
  let dataDir: string;
  let s3: S3rverInstance;
  let azurite: AzuriteInstance;
  const containers: string[] = [];
  const volumes: string[] = [];
  let bigSha: string;

  /** Run the image on the host network with CACHEGATE__ env; resolves once /health answers. */
  async function runGateway(extraEnv: Record<string, string> = {}, extraArgs: string[] = []): Promise<Running> {
    const port = await freePort();
    const volume = `cg-test-cache-${randomBytes(4).toString('hex')}`;
    volumes.push(volume);
    const env: Record<string, string> = {
      CACHEGATE__LISTEN: `127.0.0.1:${port}`,
      CACHEGATE__AUTH__BEARER_TOKEN: TOKEN,
      CACHEGATE__CACHE__MAX_MEMORY: '16MiB',
      CACHEGATE__CACHE__MAX_OBJECT_SIZE: '8MiB',
      CACHEGATE__CACHE__MAX_DISK: '64MiB',
      CACHEGATE__CACHE__DISK_PATH: '/var/cache/cachegate',
      CACHEGATE__STORES__LOCAL__TYPE: 'fs',
      CACHEGATE__STORES__LOCAL__ROOT: '/data',
      CACHEGATE__STORES__MEDIA__TYPE: 's3',
      CACHEGATE__STORES__MEDIA__BUCKET: 'media',
      CACHEGATE__STORES__MEDIA__ENDPOINT: s3.endpoint,
      CACHEGATE__STORES__MEDIA__ALLOW_HTTP: 'true',
      CACHEGATE__STORES__MEDIA__ACCESS_KEY: s3.accessKeyId,
      CACHEGATE__STORES__MEDIA__SECRET_KEY: s3.secretAccessKey,
      ...extraEnv,
    };
    const id = await docker([
      'run', '-d', '--network', 'host', '--read-only',
      '-v', `${dataDir}:/data`, '-v', `${volume}:/var/cache/cachegate`,
      ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
      ...extraArgs,
      IMAGE,
    ]);
    containers.push(id);
    const url = `http://127.0.0.1:${port}`;
    await waitFor('/health', async () => ((await fetch(`${url}/health`)).ok ? true : undefined), 60_000).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await docker(['logs', id]).catch(() => '')}`);
    });
    return { id, url, logs: async () => (await execFileP(DOCKER, ['logs', id])).stdout + (await execFileP(DOCKER, ['logs', id])).stderr };
  }

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'cg-container-'));
    // The container runs as uid 10001: let it write the fs volume.
    await chmod(dataDir, 0o777);
    await writeFile(path.join(dataDir, 'hello.txt'), 'hello from a volume\n');
    const big = randomBytes(BIG_BYTES);
    bigSha = createHash('sha256').update(big).digest('hex');
    await writeFile(path.join(dataDir, 'big.bin'), big);
    s3 = await startS3rver({ buckets: ['media'] });
    azurite = await startAzurite();
    const started = Date.now();
    await dockerBuild(IMAGE);
    const size = Number(await docker(['image', 'inspect', '-f', '{{.Size}}', IMAGE]));
    console.log(`container test: built ${IMAGE} from the project's Dockerfile in ${((Date.now() - started) / 1000).toFixed(0)} s; image size ${(size / 1e6).toFixed(0)} MB`);
  }, 30 * 60_000);

  afterAll(async () => {
    for (const id of containers) await docker(['rm', '-f', id]).catch(() => {});
    for (const v of volumes) await docker(['volume', 'rm', '-f', v]).catch(() => {});
    await s3?.stop();
    await azurite?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('holds the built app and production dependencies only: no tests, bench, sources or dev dependencies', async () => {
    const listing = await docker(['run', '--rm', '--network', 'host', '--entrypoint', 'sh', IMAGE, '-c',
      'ls -A /app; for p in vitest typescript eslint s3rver azurite playwright-core kubernetes-models; do test -e /app/node_modules/$p && echo "has $p"; done; id -u']);
    const lines = listing.split('\n');
    expect(lines.slice(0, 3).sort()).toEqual(['dist', 'node_modules', 'package.json']);
    expect(lines.filter((l) => l.startsWith('has '))).toEqual([]);
    expect(lines.at(-1)).toBe('10001');
    // The disk tier's native checksum binding is in the image and loads (not the zlib fallback).
    const crc = await docker(['run', '--rm', '--network', 'host', '--entrypoint', 'node', IMAGE, '--input-type=module', '-e',
      "const m = await import('/app/dist/cache/crc32.js'); console.log(m.crc32Impl, m.crc32(Buffer.from('123456789')).toString(16));"]);
    expect(crc.trim()).toBe('@node-rs/crc32 cbf43926');
    const config = JSON.parse(await docker(['image', 'inspect', '-f', '{{json .Config}}', IMAGE])) as {
      User: string; ExposedPorts: Record<string, unknown>; Entrypoint: string[]; Cmd: string[]; Volumes: Record<string, unknown>; Healthcheck?: { Test: string[] };
    };
    expect(config.User).toBe('10001:10001');
    expect(Object.keys(config.ExposedPorts)).toEqual(['8080/tcp']);
    expect(config.Entrypoint).toEqual(['node', 'dist/main.js']);
    expect(config.Cmd).toEqual(['--config', 'env']);
    expect(Object.keys(config.Volumes)).toEqual(['/var/cache/cachegate']);
    expect(config.Healthcheck?.Test.join(' ')).toContain('/health');
  });

  it('with no config at all, says how to give one and exits 2', async () => {
    const run = await execFileP(DOCKER, ['run', '--rm', '--network', 'host', '--read-only', IMAGE]).then(
      () => ({ code: 0, out: '' }),
      (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, out: err.stdout + err.stderr }),
    );
    expect(run.code).toBe(2);
    const lines = run.out.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect((JSON.parse(lines[0]!) as { msg: string }).msg).toMatch(/CACHEGATE__.*--config FILE/);
  });

  it('serves GET, PUT and HEAD through an fs volume and s3rver, read-only root, as uid 10001, JSON logs only', async () => {
    const gw = await runGateway();
    expect(await (await fetch(`${gw.url}/health`)).text()).toBe('OK');
    // /ready turns 200 once both stores answered their probes.
    await waitFor('/ready', async () => ((await fetch(`${gw.url}/ready`)).status === 200 ? true : undefined));

    const first = await fetch(`${gw.url}/local/hello.txt`, { headers: AUTH });
    expect(first.status).toBe(200);
    expect(await first.text()).toBe('hello from a volume\n');
    const again = await fetch(`${gw.url}/local/hello.txt`, { headers: AUTH });
    expect(again.headers.get('x-cg-status')).toBe('hit=1');
    await again.arrayBuffer();
    expect((await fetch(`${gw.url}/local/hello.txt`)).status).toBe(401);

    for (const bucket of ['local', 'media']) {
      const body = `put through ${bucket}`;
      const put = await fetch(`${gw.url}/${bucket}/dir/put.txt`, { method: 'PUT', headers: { ...AUTH, 'content-type': 'text/plain' }, body });
      expect(put.status, await put.clone().text()).toBe(200);
      const head = await fetch(`${gw.url}/${bucket}/dir/put.txt`, { method: 'HEAD', headers: AUTH });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-length')).toBe(String(body.length));
      const get = await fetch(`${gw.url}/${bucket}/dir/put.txt`, { headers: AUTH });
      expect(await get.text()).toBe(body);
    }
    // The PUT went through the volume to the host, and through s3rver's API.
    const s3head = await fetch(`${s3.endpoint}/media/dir/put.txt`, { method: 'HEAD' });
    expect([200, 403]).toContain(s3head.status); // s3rver may refuse anonymous reads; it saw the key either way
    const { readFile } = await import('node:fs/promises');
    expect(await readFile(path.join(dataDir, 'dir', 'put.txt'), 'utf8')).toBe('put through local');

    // The gateway process (pid 1 in the container) runs as 10001.
    const status = await docker(['exec', gw.id, 'cat', '/proc/1/status']);
    expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe('10001');
    // The root filesystem is read-only: only the volumes take writes.
    await expect(docker(['exec', gw.id, 'sh', '-c', 'touch /app/x'])).rejects.toThrow(/Read-only file system/);

    // The image's HEALTHCHECK passes.
    await waitFor('healthy', async () => ((await docker(['inspect', '-f', '{{.State.Health.Status}}', gw.id])) === 'healthy' ? true : undefined), 90_000);

    const logs = (await gw.logs()).trim().split('\n');
    expect(logs.length).toBeGreaterThan(2);
    for (const line of logs) expect(() => JSON.parse(line), line).not.toThrow();
  });

  it('the compose init script creates the bucket and the container, with hello.txt in each', async () => {
    const s3b = await startS3rver();
    try {
      await docker([
        'run', '--rm', '--network', 'host', '--read-only', '--entrypoint', 'node',
        '-v', `${path.join(ROOT, 'deploy/compose/init-stores.cjs')}:/app/init-stores.cjs:ro`,
        '-e', `S3_ENDPOINT=${s3b.endpoint}`, '-e', 'S3_BUCKET=media', '-e', `S3_ACCESS_KEY=${s3b.accessKeyId}`, '-e', `S3_SECRET_KEY=${s3b.secretAccessKey}`,
        '-e', `AZURE_CONNECTION_STRING=${azurite.connectionString}`, '-e', 'AZURE_CONTAINER=archive',
        IMAGE, '/app/init-stores.cjs',
      ]);
      const gw = await runGateway({
        CACHEGATE__STORES__MEDIA__ENDPOINT: s3b.endpoint,
        CACHEGATE__STORES__ARCHIVE__TYPE: 'azure',
        CACHEGATE__STORES__ARCHIVE__CONTAINER: 'archive',
        CACHEGATE__STORES__ARCHIVE__CONNECTION_STRING: azurite.connectionString,
      });
      for (const bucket of ['media', 'archive']) {
        const res = await fetch(`${gw.url}/${bucket}/hello.txt`, { headers: AUTH });
        expect(await res.text()).toBe('Hello from cachegate!\n');
      }
    } finally {
      await s3b.stop();
    }
  });

  it('docker stop during a download drains it: the download completes and the exit code is 0', async () => {
    const gw = await runGateway();
    const hash = createHash('sha256');
    let received = 0;
    let res!: http.IncomingMessage;
    await new Promise<void>((resolve, reject) => {
      const req = http.get(`${gw.url}/local/big.bin`, { headers: AUTH }, (r) => {
        res = r;
        resolve();
      });
      req.on('error', reject);
    });
    expect(res.statusCode).toBe(200);
    // Take the first chunk, then stop reading at once: the transfer is in flight when the stop
    // arrives. (Polling for the first bytes instead let all 48 MiB arrive first on a fast
    // machine, and then there was nothing left to drain.)
    const onData = (d: Buffer) => {
      received += d.length;
      hash.update(d);
    };
    await new Promise<void>((resolve) => {
      const first = (d: Buffer) => {
        onData(d);
        res.pause();
        res.off('data', first);
        resolve();
      };
      res.on('data', first);
    });
    res.on('data', onData); // (an explicitly paused stream stays paused)
    expect(received).toBeLessThan(BIG_BYTES);
    const stopped = docker(['stop', '-t', '60', gw.id], 120_000);
    // While draining, the gateway stays up for this transfer only.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await docker(['inspect', '-f', '{{.State.Running}}', gw.id])).toBe('true');
    const done = new Promise<void>((resolve, reject) => {
      res.once('end', resolve);
      res.once('error', reject);
    });
    res.resume();
    await done;
    await stopped;
    expect(received).toBe(BIG_BYTES);
    expect(hash.digest('hex')).toBe(bigSha);
    expect(await docker(['inspect', '-f', '{{.State.ExitCode}}', gw.id])).toBe('0');
    const logs = await gw.logs();
    expect(logs).toContain('shutting down');
    expect(logs).toContain('"msg":"stopped"');
  });

  it('docker-compose config accepts docker-compose.yml', async () => {
    const { stdout } = await execFileP('docker-compose', ['-f', path.join(ROOT, 'docker-compose.yml'), 'config'], { cwd: ROOT });
    expect(stdout).toContain('cachegate');
    expect(stdout).toMatch(/published: 8080|8080:8080/);
  });
});
