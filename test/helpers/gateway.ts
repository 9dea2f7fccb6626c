/**
 * Starting a real gateway for tests: in-process on a free port (with stores we can count), or
 * as a child process of the built CLI (for RSS and signal tests).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { validateConfig } from '../../src/config/load.js';
import { createGateway, type Gateway } from '../../src/gateway.js';
import { fromStores } from '../../src/stores/registry.js';
import type { ObjectStore } from '../../src/stores/types.js';

export const TEST_TOKEN = 'test-token-0123456789abcdef';
export const AUTH = { authorization: `Bearer ${TEST_TOKEN}` };

export interface TestGateway {
  url: string;
  gateway: Gateway;
  close(): Promise<void>;
}

/**
 * Start a gateway in this process. `config` is raw config data (defaults: a bearer token and an
 * fs store); `stores` replaces the configured stores with ready-made (e.g. counting) ones.
 */
export async function startGateway(
  config: Record<string, unknown>,
  stores?: ObjectStore[],
  options: { log?: import('pino').Logger } = {},
): Promise<TestGateway> {
  const raw = {
    listen: '127.0.0.1:0',
    auth: { bearer_token: TEST_TOKEN },
    ...config,
    stores: config.stores ?? Object.fromEntries((stores ?? []).map((s) => [s.id, { type: 'fs', root: '/nonexistent' }])),
  };
  const gateway = createGateway(validateConfig(raw), {
    log: options.log ?? pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    ...(stores ? { stores: fromStores(new Map(stores.map((s) => [s.id, s]))) } : {}),
  });
  const { url } = await gateway.listen('127.0.0.1', 0);
  return { url, gateway, close: () => gateway.close() };
}

export interface ChildGateway {
  url: string;
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Peak and current resident set of the child, in bytes (Linux /proc). */
  memory(): Promise<{ peakRss: number; rss: number }>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const MAIN = path.resolve(import.meta.dirname, '../../dist/main.js');

/** Start the built CLI with a config file written from `config`; resolves once it listens. */
export async function startChildGateway(config: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Promise<ChildGateway> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cachegate-child-'));
  const file = path.join(dir, 'config.yaml');
  await writeFile(file, stringify({ listen: '127.0.0.1:0', auth: { bearer_token: TEST_TOKEN }, ...config }));
  const child = spawn(process.execPath, [MAIN, '--config', file], {
    cwd: dir,
    env: { PATH: process.env.PATH, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start: ${err}`)), 15_000);
    const onData = () => {
      const m = /"listen":"(http:\/\/[^"]+)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code}: ${err}`));
    });
  });
  return {
    url,
    child,
    stdout: () => out,
    stderr: () => err,
    async memory() {
      const { readFile } = await import('node:fs/promises');
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
      const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
      return { peakRss: kb('VmHWM'), rss: kb('VmRSS') };
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null) return child.exitCode;
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill(signal);
      const code = await exited;
      await rm(dir, { recursive: true, force: true });
      return code;
    },
  };
}
