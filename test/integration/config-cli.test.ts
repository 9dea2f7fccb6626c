/**
 * Several config files and the process's output, as a user sees them: `--config a --config b
 * --config env` merges in order; `config check` prints the result with secrets redacted and
 * fails with exit 2 naming the path and the file; `--version`; and in JSON mode every line on
 * stdout and stderr parses as JSON, the AWS SDK's Node-version warning included (once), and an
 * uncaught error is one JSON line before exit 1.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startS3rver, type S3rverInstance } from '../helpers/s3rver.js';

const MAIN = path.resolve(import.meta.dirname, '../../dist/main.js');
const PKG = path.resolve(import.meta.dirname, '../../package.json');
const execFileP = promisify(execFile);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function runToExit(args: string[], env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []): Promise<Run> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [...nodeArgs, MAIN, ...args], { env: { PATH: process.env.PATH, ...env }, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Start `serve`, wait for the listening line, run `whileUp`, SIGTERM, collect all output. */
async function serveUntil(args: string[], env: NodeJS.ProcessEnv, whileUp: (url: string) => Promise<void>, nodeArgs: string[] = []): Promise<Run> {
  const child = spawn(process.execPath, [...nodeArgs, MAIN, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not listening: ${stdout} ${stderr}`)), 20_000);
    child.stdout.on('data', () => {
      const m = /"listen":"(http:\/\/[^"]+)"/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited early (${code}): ${stdout} ${stderr}`));
    });
  });
  try {
    await whileUp(url);
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
  }
  return { code: await exited, stdout, stderr };
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new Error(`not a JSON line: ${l}`);
      }
    });
}

describe('several config files', () => {
  let dir: string;
  let root: string;
  let base: string;
  let secrets: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-layers-'));
    root = path.join(dir, 'data');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(root);
    await writeFile(path.join(root, 'a.txt'), 'layered');
    base = path.join(dir, 'base.yaml');
    secrets = path.join(dir, 'secrets.yaml');
    await writeFile(
      base,
      stringify({
        listen: '127.0.0.1:0',
        auth: { bearer_tokens: ['from-base'] },
        cache: { max_memory: '8MiB', max_object_size: '1MiB' },
        stores: { Files: { type: 'fs', root, cache_control: 'public, max-age=60' } },
      }),
    );
    // Maps merge deep (cache keeps max_object_size), lists are replaced (bearer_tokens).
    await writeFile(secrets, stringify({ auth: { bearer_tokens: ['from-secrets'] }, cache: { max_memory: '16MiB' } }));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('serve merges the files in order, then env as an overlay', async () => {
    const env = { CACHEGATE__STORES__FILES__CACHE_CONTROL: 'public, max-age=5' };
    const run = await serveUntil(['--config', base, '--config', secrets, '--config', 'env'], env, async (url) => {
      const ok = await fetch(`${url}/files/a.txt`, { headers: { authorization: 'Bearer from-secrets' } });
      expect(await ok.text()).toBe('layered');
      // env came last: its cache_control wins over base.yaml's.
      expect(ok.headers.get('cache-control')).toBe('public, max-age=5');
      // The later list replaced the earlier one.
      expect((await fetch(`${url}/files/a.txt`, { headers: { authorization: 'Bearer from-base' } })).status).toBe(401);
    });
    expect(run.code).toBe(0);
  });

  it('config check prints the resolved config with secrets redacted', async () => {
    const run = await runToExit(['config', 'check', '--config', base, '--config', secrets]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('valid');
    expect(run.stdout).toContain('max_memory: 16777216');
    expect(run.stdout).toContain('max_object_size: 1048576');
    expect(run.stdout).not.toContain('from-secrets');
    expect(run.stdout).not.toContain('from-base');
    expect(run.stdout).toContain('[redacted]');
  });

  it('config check exits 2 naming the path and the file a bad value came from', async () => {
    const bad = path.join(dir, 'bad.yaml');
    await writeFile(bad, stringify({ stores: { files: { type: 'fs', root: '' } }, cache: { max_memory: 'lots' } }));
    const run = await runToExit(['config', 'check', '--config', base, '--config', bad]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`stores.files.root: must not be empty (from ${bad})`);
    expect(run.stderr).toContain(`cache.max_memory`);
    expect(run.stderr).not.toMatch(/\n\s+at /);
    // A required key missing after the merge names the file that made its section.
    const noBucket = path.join(dir, 'no-bucket.yaml');
    await writeFile(noBucket, stringify({ stores: { media: { type: 's3', endpoint: '127.0.0.1:1', allow_http: true } } }));
    const missing = await runToExit(['config', 'check', base, noBucket]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`stores.media.bucket: required (from ${noBucket})`);
  });

  it('a missing file, an unreadable one and a YAML error each exit 2 with one line', async () => {
    const yaml = path.join(dir, 'broken.yaml');
    await writeFile(yaml, 'cache:\n  max_memory: [unclosed\n');
    for (const [args, pattern] of [
      [['--config', path.join(dir, 'nope.yaml')], /cannot read config file .*nope\.yaml: no such file/],
      [['--config', dir], /cannot read config file .*: is a directory/],
      [['config', 'check', '--config', yaml], /broken\.yaml: invalid YAML: .* at line \d+, column \d+/],
      [['--config', base, '--config', yaml], /broken\.yaml: invalid YAML: .* at line \d+, column \d+/],
    ] as const) {
      const run = await runToExit([...args], { LOG_FORMAT: 'pretty' });
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stderr.trim().split('\n'), run.stderr).toHaveLength(1);
      expect(run.stderr).toMatch(pattern);
    }
  });

  it('--config env with nothing set says how to give a config, and exits 2', async () => {
    const run = await runToExit(['--config', 'env']);
    expect(run.code).toBe(2);
    const [line, ...more] = jsonLines(run.stderr);
    expect(more).toEqual([]);
    expect(line!.msg).toMatch(/no config given: set CACHEGATE__.*--config FILE/);
  });

  it('--version prints the package version', async () => {
    const { version } = JSON.parse(await readFile(PKG, 'utf8')) as { version: string };
    const run = await runToExit(['--version']);
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe(`cachegate ${version}`);
  });
});

describe('only JSON on the log', () => {
  let s3: S3rverInstance;
  let dir: string;
  let config: string;

  beforeAll(async () => {
    s3 = await startS3rver({ buckets: ['media'] });
    dir = await mkdtemp(path.join(tmpdir(), 'cg-json-'));
    config = path.join(dir, 'gw.yaml');
    await writeFile(
      config,
      stringify({
        listen: '127.0.0.1:0',
        auth: { bearer_token: 'json-token' },
        stores: {
          media: { type: 's3', bucket: 'media', endpoint: s3.endpoint, allow_http: true, access_key: s3.accessKeyId, secret_key: s3.secretAccessKey },
          other: { type: 's3', bucket: 'media', endpoint: s3.endpoint, allow_http: true, access_key: s3.accessKeyId, secret_key: s3.secretAccessKey },
        },
      }),
    );
  });
  afterAll(async () => {
    await s3.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('every line on stdout and stderr parses, and process warnings come through the logger once', async () => {
    // Two S3 clients: the SDK warns per client on Node < 22; a test warning is emitted twice.
    const preload = `data:text/javascript,setTimeout(()=>{process.emitWarning('test warning','CachegateTestWarning');process.emitWarning('test warning','CachegateTestWarning')},2500)`;
    const run = await serveUntil(['--config', config], { LOG_FORMAT: 'json' }, async (url) => {
      expect((await fetch(`${url}/media/missing`, { headers: { authorization: 'Bearer json-token' } })).status).toBe(404);
      // The preload warns 2.5 s after start, once the gateway is up.
      await new Promise((r) => setTimeout(r, 3_000));
    }, ['--import', preload]);
    expect(run.code).toBe(0);
    const out = jsonLines(run.stdout);
    expect(jsonLines(run.stderr)).toEqual([]);
    const warnings = out.filter((l) => l.level === 40 && 'warning' in l);
    expect(warnings.filter((w) => w.warning === 'CachegateTestWarning')).toHaveLength(1);
    const [major] = process.versions.node.split('.').map(Number);
    const sdk = warnings.filter((w) => String(w.msg).includes('NodeVersionSupportWarning'));
    // The SDK warns only on Node < 22; on 22+ there is nothing to route.
    expect(sdk).toHaveLength(major! < 22 ? 1 : 0);
  });

  it('an uncaught error is one fatal JSON line, then exit 1', async () => {
    const preload = `data:text/javascript,setTimeout(()=>{throw new Error('boom from a test')},1500)`;
    const child = spawn(process.execPath, ['--import', preload, MAIN, '--config', config], { env: { PATH: process.env.PATH, LOG_FORMAT: 'json' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(code).toBe(1);
    expect(jsonLines(stderr)).toEqual([]);
    const fatal = jsonLines(stdout).filter((l) => l.level === 60);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatchObject({ err: 'boom from a test', msg: 'uncaught exception; exiting' });
    expect(String(fatal[0]!.stack)).toContain('boom from a test');
  });
});
