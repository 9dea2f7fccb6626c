/**
 * `cachegate keygen | sign | verify` as a user runs them (the built CLI, `dist/main.js`), with
 * the links they print checked against a running gateway.
 */
import { execFile } from 'node:child_process';
import { createPrivateKey, createPublicKey, randomBytes, sign as cryptoSign } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { startGateway, type TestGateway } from '../helpers/gateway.js';

const MAIN = path.resolve(import.meta.dirname, '../../dist/main.js');
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { cwd, env: { PATH: process.env.PATH }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
    });
  });
}

const privateKeyOf = (seed: string) =>
  createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, Buffer.from(seed, 'base64url')]), format: 'der', type: 'pkcs8' });
const publicKeyOf = (seed: string) => createPublicKey(privateKeyOf(seed)).export({ format: 'jwk' }).x as string;

interface KeyFile {
  auth: { public_key: string; private_key: string };
}

const BODY = 'hello from a signed link';
let dir: string;
let keysFile: string;
let fullConfig: string;
let keys: KeyFile['auth'];
let gw: TestGateway;

/** The one line a successful `sign` printed. */
function linkFrom(run: Run): string {
  const lines = run.stdout.trim().split('\n');
  if (run.code !== 0 || run.stderr !== '' || lines.length !== 1 || !/^http:\/\/\S+$/.test(lines[0]!)) {
    throw new Error(`sign failed (exit ${run.code}): ${run.stderr}${run.stdout}`);
  }
  return lines[0]!;
}

/** A `sig` made by an independent signer (node:crypto, JSON by hand). */
function independentSig(json: string, seed: string): string {
  const payload = Buffer.from(json);
  return `${payload.toString('base64url')}.${cryptoSign(null, payload, privateKeyOf(seed)).toString('base64url')}`;
}

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first`);
  dir = await mkdtemp(path.join(tmpdir(), 'cg-keys-cli-'));
  const root = path.join(dir, 'data');
  await mkdir(path.join(root, 'a'), { recursive: true });
  await writeFile(path.join(root, 'a', 'b c.txt'), BODY);

  keysFile = path.join(dir, 'auth.keys.yaml');
  const run = await cli(['keygen', '--out', keysFile], dir);
  expect(run.code).toBe(0);
  keys = (parse(await readFile(keysFile, 'utf8')) as KeyFile).auth;

  // A whole gateway config carrying the generated keys.
  fullConfig = path.join(dir, 'gateway.yaml');
  await writeFile(fullConfig, stringify({ listen: '127.0.0.1:0', auth: keys, stores: { media: { type: 'fs', root } } }));
  gw = await startGateway({ auth: { public_key: keys.public_key }, stores: { media: { type: 'fs', root } } });
});

afterAll(async () => {
  await gw?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('keygen', () => {
  it('writes auth.public_key and auth.private_key (32-byte base64url each, matching), mode 0600', async () => {
    for (const key of [keys.public_key, keys.private_key]) {
      expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(key, 'base64url')).toHaveLength(32);
      expect(Buffer.from(key, 'base64url').toString('base64url')).toBe(key);
    }
    expect(publicKeyOf(keys.private_key)).toBe(keys.public_key);
    expect((await stat(keysFile)).mode & 0o777).toBe(0o600);
  });

  it('refuses to overwrite without --force (non-zero exit, file unchanged)', async () => {
    const before = await readFile(keysFile, 'utf8');
    const refused = await cli(['keygen', '--out', keysFile], dir);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('--force');
    expect(await readFile(keysFile, 'utf8')).toBe(before);
  });

  it('--force overwrites an existing file, and leaves it mode 0600', async () => {
    const file = path.join(dir, 'old-keys.yaml');
    await writeFile(file, 'old: content\n', { mode: 0o644 });
    const forced = await cli(['keygen', '--out', file, '--force'], dir);
    expect(forced.code).toBe(0);
    const { auth } = parse(await readFile(file, 'utf8')) as KeyFile;
    expect(auth.private_key).not.toBe(keys.private_key);
    expect(publicKeyOf(auth.private_key)).toBe(auth.public_key);
    expect(forced.stdout).toContain(auth.public_key);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });
});

// Each CLI start costs most of a second; independent runs go concurrently (context `expect`).
describe.concurrent('sign', () => {
  it('--config FILE prints a link the gateway accepts, and verify --config agrees', async ({ expect }) => {
    const link = linkFrom(await cli(['sign', '--config', fullConfig, '--bucket', 'media', '--path', 'a/b c.txt', '--expires-in', '10m', '--base-url', gw.url], dir));
    expect(link.startsWith(`${gw.url}/media/a/b%20c.txt?sig=`)).toBe(true);
    const res = await fetch(link);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(BODY);
    // exp is about 10 minutes from now.
    const claims = JSON.parse(Buffer.from(new URL(link).searchParams.get('sig')!.split('.')[0]!, 'base64url').toString('utf8')) as { exp: number };
    expect(Math.abs(claims.exp - (Date.now() / 1000 + 600))).toBeLessThan(30);
    const verified = await cli(['verify', link, '--config', fullConfig], dir);
    expect(verified.code).toBe(0);
    expect(verified.stdout).toMatch(/^valid: GET media\/a\/b c\.txt, expires \d{4}-/);
  });

  it('--key SEED prints a link the gateway accepts (GET and HEAD)', async ({ expect }) => {
    const link = linkFrom(await cli(['sign', `--key=${keys.private_key}`, '--bucket', 'media', '--path', 'a/b c.txt', '--expires-in', '10m', '--base-url', gw.url], dir));
    const res = await fetch(link);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(BODY);
    expect((await fetch(link, { method: 'HEAD' })).status).toBe(200);
  });

  it('a --method PUT link is refused for GET and HEAD (403)', async ({ expect }) => {
    const link = linkFrom(await cli(['sign', `--key=${keys.private_key}`, '--method', 'PUT', '--bucket', 'media', '--path', 'a/b c.txt', '--base-url', gw.url], dir));
    const res = await fetch(link);
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toContain('link allows PUT, not GET');
    expect((await fetch(link, { method: 'HEAD' })).status).toBe(403);
  });

  it('the file keygen wrote works directly as --config for sign and verify', async ({ expect }) => {
    const run = await cli(['sign', '--config', keysFile, '--bucket', 'media', '--path', 'a/b c.txt', '--base-url', gw.url], dir);
    expect(run.stderr).toBe('');
    const link = linkFrom(run);
    expect((await fetch(link)).status).toBe(200);
    const verified = await cli(['verify', link, '--config', keysFile], dir);
    expect(verified.stdout).toMatch(/^valid: /);
    expect(verified.code).toBe(0);
  });
});

describe.concurrent('verify', () => {
  const exp = () => Math.floor(Date.now() / 1000);
  const linkFor = (json: string, seed = keys.private_key) => `${gw.url}/media/a/b%20c.txt?sig=${independentSig(json, seed)}`;
  const good = () => linkFor(`{"v":1,"exp":${exp() + 600},"m":"GET","b":"media","p":"a/b c.txt"}`);

  it('keys that start with a dash (one base64url key in 64) work as separate arguments to sign --key and verify --public-key', async ({ expect }) => {
    // A seed whose base64url starts with '-' (first 6 bits = 62), and one whose public key does.
    const dashSeed = Buffer.concat([Buffer.from([0xf8]), randomBytes(31)]).toString('base64url');
    expect(dashSeed.startsWith('-')).toBe(true);
    let seed = '';
    do seed = randomBytes(32).toString('base64url');
    while (!publicKeyOf(seed).startsWith('-'));
    const link = linkFor(`{"v":1,"exp":${exp() + 600},"m":"GET","b":"media","p":"a/b c.txt"}`, seed);
    const verified = await cli(['verify', link, '--public-key', publicKeyOf(seed)], dir);
    expect(verified.stdout, `stderr: ${verified.stderr}`).toMatch(/^valid: /);
    const signed = await cli(['sign', '--key', dashSeed, '--bucket', 'media', '--path', 'a/b c.txt', '--base-url', gw.url], dir);
    expect(signed.stderr).toBe('');
    const again = await cli(['verify', linkFrom(signed), '--public-key', publicKeyOf(dashSeed)], dir);
    expect(again.stdout, `stderr: ${again.stderr}`).toMatch(/^valid: /);
    // A missing value is still an error, not the next option read as a key.
    const missing = await cli(['verify', link, '--public-key', '--config', fullConfig], dir);
    expect(missing.code).not.toBe(0);
  });

  it("a tampered signature: 'bad signature', exit 1", async ({ expect }) => {
    const url = new URL(good());
    const [payload, signature] = url.searchParams.get('sig')!.split('.') as [string, string];
    // Change a middle character: still canonical base64url, but a different signature.
    const i = 20;
    const tampered = `${signature.slice(0, i)}${signature[i] === 'A' ? 'B' : 'A'}${signature.slice(i + 1)}`;
    const bad = `${url.origin}${url.pathname}?sig=${payload}.${tampered}`;
    const run = await cli(['verify', bad, '--public-key', keys.public_key], dir);
    expect(run.code).toBe(1);
    expect(run.stdout, `stderr: ${run.stderr}`).toMatch(/^invalid: bad signature$/m);
    expect((await fetch(bad)).status).toBe(401);
  });

  it("a link whose path was changed: 'another path', exit 1", async ({ expect }) => {
    const link = good();
    const moved = link.replace('/a/b%20c.txt?', '/a/other.txt?');
    expect(moved).not.toBe(link);
    const run = await cli(['verify', moved, '--config', fullConfig], dir);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/another path/);
  });

  it("an expired link: 'expired', exit 1", async ({ expect }) => {
    const expired = linkFor(`{"v":1,"exp":${exp() - 5},"m":"GET","b":"media","p":"a/b c.txt"}`);
    const run = await cli(['verify', expired, '--config', fullConfig], dir);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/expired/);
    expect((await fetch(expired)).status).toBe(401);
  });
});
