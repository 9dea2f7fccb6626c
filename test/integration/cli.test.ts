/**
 * The CLI as a user runs it: the embedded default prints a curl line that works as printed,
 * every config mode starts the gateway, and config mistakes exit non-zero with the bad path
 * named and no stack trace.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';

const MAIN = path.resolve(import.meta.dirname, '../../dist/main.js');
const execFileP = promisify(execFile);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Start the CLI, wait until `ready(stdout)` matches, run `whileUp`, then SIGTERM it. */
async function runUntil(
  args: string[],
  opts: { cwd: string; env?: NodeJS.ProcessEnv },
  ready: RegExp,
  whileUp: (match: RegExpExecArray) => Promise<void>,
): Promise<Run> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd: opts.cwd,
    env: { PATH: process.env.PATH, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready: ${stdout} ${stderr}`)), 15_000);
    const check = () => {
      const m = ready.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    child.stdout.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited early (${code}): ${stderr}`));
    });
  });
  try {
    await whileUp(match);
  } finally {
    child.kill('SIGTERM');
  }
  return { code: await exited, stdout, stderr };
}

/** Run the CLI expecting it to exit by itself. */
async function runToExit(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [MAIN, ...args], { cwd, env: { PATH: process.env.PATH, ...env }, timeout: 15_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('cachegate CLI', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-cli-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('starts the embedded default with a generated token and prints a curl line that works as printed', async () => {
    const cwd = await mkdtemp(path.join(dir, 'default-'));
    // Not a TTY, so JSON lines: the curl line is the `try` field of one of them.
    const run = await runUntil(['--listen', '127.0.0.1:0'], { cwd }, /^(\{.*"try":.*\})$/m, async (m) => {
      // Run the line exactly as printed, through a shell, as a user would paste it.
      const tryIt = (JSON.parse(m[1]!) as { try: string }).try;
      const { stdout } = await execFileP('sh', ['-c', tryIt]);
      expect(stdout).toBe('Hello from cachegate!\n');
      // Without the token the same URL is refused: the default is never an open gateway.
      const url = /(http:\/\/\S+)/.exec(tryIt)![1]!;
      expect((await fetch(url)).status).toBe(401);
    });
    expect(run.code).toBe(0);
    // The token is in a file only this user may read, never on a log line.
    const tokenFile = path.join(cwd, '.cachegate-token');
    const token = (await readFile(tokenFile, 'utf8')).trim();
    expect(token).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    expect((await stat(tokenFile)).mode & 0o777).toBe(0o600);
    expect(run.stdout + run.stderr).not.toContain(token);
    for (const line of run.stdout.trim().split('\n')) expect(() => JSON.parse(line), line).not.toThrow();
    expect(await readFile(path.join(cwd, 'data', 'hello.txt'), 'utf8')).toBe('Hello from cachegate!\n');
  });

  it('starts from a config file given with --config or as a positional argument', async () => {
    const root = await mkdtemp(path.join(dir, 'root-'));
    await writeFile(path.join(root, 'a.txt'), 'from a file config');
    const file = path.join(dir, 'gw.yaml');
    await writeFile(
      file,
      stringify({ listen: '127.0.0.1:0', auth: { bearer_token: 'file-token' }, cache: { max_memory: '8MiB' }, stores: { Files: { type: 'fs', root } } }),
    );
    for (const args of [['--config', file], [file], ['serve', '--config', file]]) {
      const run = await runUntil(args, { cwd: dir, env: { LOG_LEVEL: 'info' } }, /"listen":"(http:\/\/[^"]+)"/, async (m) => {
        // Store ids are lowercased, as cachegate does.
        const res = await fetch(`${m[1]}/files/a.txt`, { headers: { authorization: 'Bearer file-token' } });
        expect(await res.text()).toBe('from a file config');
      });
      expect(run.code).toBe(0);
    }
  });

  it('starts from env variables with --config env', async () => {
    const root = await mkdtemp(path.join(dir, 'env-'));
    await writeFile(path.join(root, 'e.txt'), 'from env');
    const env = {
      CACHEGATE__LISTEN: '127.0.0.1:0',
      CACHEGATE__AUTH__BEARER_TOKEN: 'env-token',
      CACHEGATE__CACHE__MAX_MEMORY: '16MiB',
      CACHEGATE__STORES__LOCAL__TYPE: 'fs',
      CACHEGATE__STORES__LOCAL__ROOT: root,
    };
    const run = await runUntil(['--config', 'env'], { cwd: dir, env }, /"listen":"(http:\/\/[^"]+)"/, async (m) => {
      const res = await fetch(`${m[1]}/local/e.txt`, { headers: { authorization: 'Bearer env-token' } });
      expect(await res.text()).toBe('from env');
    });
    expect(run.code).toBe(0);

    const whole = await runUntil(
      ['--config', 'env'],
      { cwd: dir, env: { CACHEGATE_CONFIG: stringify({ listen: '127.0.0.1:0', auth: { bearer_token: 'yaml-token' }, stores: { local: { type: 'fs', root } } }) } },
      /"listen":"(http:\/\/[^"]+)"/,
      async (m) => {
        const res = await fetch(`${m[1]}/local/e.txt`, { headers: { authorization: 'Bearer yaml-token' } });
        expect(await res.text()).toBe('from env');
      },
    );
    expect(whole.code).toBe(0);
  });

  it('exits non-zero naming the bad config path, with no stack trace', async () => {
    const bad = path.join(dir, 'bad.yaml');
    await writeFile(bad, stringify({ listen: '127.0.0.1:0', auth: { bearer_token: 't' }, stores: { media: { type: 's3', region: 'x' } }, cache: { max_memory: 'lots' } }));
    const run = await runToExit(['--config', bad], dir);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('stores.media.bucket');
    expect(run.stderr).toContain('cache.max_memory');
    expect(run.stderr).not.toMatch(/\n\s+at /);

    const missing = await runToExit(['--config', path.join(dir, 'nope.yaml')], dir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read config file/);
    expect(missing.stderr).not.toMatch(/\n\s+at /);

    const yaml = path.join(dir, 'broken.yaml');
    await writeFile(yaml, 'stores: [unclosed');
    const broken = await runToExit([yaml], dir);
    expect(broken.code).toBe(2);
    expect(broken.stderr).toMatch(/invalid YAML/);
  });

  it('accepts sentry: {dsn: null} (cachegate crashes on it)', async () => {
    const root = await mkdtemp(path.join(dir, 'sentry-'));
    const file = path.join(dir, 'sentry.yaml');
    await writeFile(file, stringify({ listen: '127.0.0.1:0', auth: { bearer_token: 't' }, sentry: { dsn: null }, stores: { local: { type: 'fs', root } } }));
    const run = await runUntil(['--config', file], { cwd: dir }, /"listen":"(http:\/\/[^"]+)"/, async () => {});
    expect(run.code).toBe(0);
  });
});
