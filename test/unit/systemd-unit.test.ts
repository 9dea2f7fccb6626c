/**
 * deploy/systemd/cachegate@.service: the one-process-per-core template. It carries the sandboxing
 * baseline, gives each instance its own port, disk subdirectory and node id (the lines the
 * cluster tests start their gateways with), stops within the drain time, and systemd accepts it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configFromEnv, validateConfig } from '../../src/config/load.js';

const UNIT = path.resolve(import.meta.dirname, '../../deploy/systemd/cachegate@.service');

/** `Key=value` lines of the [Service] section; repeated keys keep every value. */
async function serviceSection(): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of (await readFile(UNIT, 'utf8')).split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('[')) {
      section = line;
      continue;
    }
    if (section !== '[Service]') continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

describe('deploy/systemd/cachegate@.service', () => {
  it('has the sandboxing baseline', async () => {
    const s = await serviceSection();
    for (const [k, v] of Object.entries({ DynamicUser: 'yes', ProtectSystem: 'strict', ProtectHome: 'yes', PrivateTmp: 'yes', NoNewPrivileges: 'yes' })) {
      expect(s.get(k), k).toEqual([v]);
    }
    expect(s.get('CacheDirectory')).toEqual(['cachegate/%i']);
    expect(s.get('CapabilityBoundingSet')).toEqual(['']);
  });

  it('gives each instance its own port, disk subdirectory and node id, and loads as a config', async () => {
    const env = Object.fromEntries(
      (await serviceSection()).get('Environment')!.map((e) => {
        const eq = e.indexOf('=');
        return [e.slice(0, eq), e.slice(eq + 1).replaceAll('%i', '8102').replaceAll('%C', '/var/cache').replaceAll('%H', 'web1')];
      }),
    );
    const config = validateConfig(
      configFromEnv({ ...env, CACHEGATE__AUTH__BEARER_TOKEN: 'token-0123456789', CACHEGATE__CACHE__MAX_DISK: '1GiB', CACHEGATE__STORES__M__TYPE: 'fs', CACHEGATE__STORES__M__ROOT: '/srv' }),
    );
    expect(config.listen).toBe('127.0.0.1:8102');
    // The disk tier lives in the instance's CacheDirectory.
    expect(config.cache.disk_path).toBe('/var/cache/cachegate/8102');
    expect(config.server.node_id).toBe('web1-8102');
  });

  it('waits longer than the drain before SIGKILL', async () => {
    const s = await serviceSection();
    const stopSec = Number(/^(\d+)s?$/.exec(s.get('TimeoutStopSec')![0]!)![1]);
    const shutdownMs = validateConfig({ auth: { bearer_token: 'token-0123456789' }, stores: { m: { type: 'fs', root: '/x' } } }).server.shutdown_timeout;
    expect(stopSec * 1000).toBeGreaterThan(shutdownMs);
  });

  it('passes systemd-analyze verify', async (ctx) => {
    if (spawnSync('systemd-analyze', ['--version']).status !== 0) {
      ctx.skip('systemd-analyze is not installed');
      return;
    }
    const dir = await mkdtemp(path.join(tmpdir(), 'cg-unit-'));
    try {
      // The binary path is the installer's; point it at one that exists here.
      const text = (await readFile(UNIT, 'utf8')).replace('/usr/local/bin/cachegate', process.execPath);
      await writeFile(path.join(dir, 'cachegate@.service'), text);
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', path.join(dir, 'cachegate@8101.service')], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr.trim()).toBe('');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
