/**
 * config.example.yaml cannot drift from the schema: it loads through the real loader (with its
 * ${…} placeholders filled in), its stores and keys build, it names every key the schema knows and
 * no key the schema does not, and every key has a one-line comment with its default.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { z } from 'zod';
import { createKeyring } from '../../src/auth/keys.js';
import { loadConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { generateKeypair } from '../../src/sign/index.js';
import { createStoreRegistry } from '../../src/stores/registry.js';

const EXAMPLE = path.resolve(import.meta.dirname, '../../config.example.yaml');

/** Dotted key paths a zod schema accepts; record keys become `*`, array items `[]`. */
function schemaPaths(schema: z.core.$ZodType, at: string, out: Set<string>): void {
  const def = schema._zod.def as unknown as Record<string, unknown> & { type: string };
  switch (def.type) {
    case 'object':
      for (const [k, v] of Object.entries(def.shape as Record<string, z.core.$ZodType>)) {
        const p = at ? `${at}.${k}` : k;
        out.add(p);
        schemaPaths(v, p, out);
      }
      return;
    case 'default':
    case 'optional':
    case 'nullable':
    case 'prefault':
      return schemaPaths(def.innerType as z.core.$ZodType, at, out);
    case 'pipe':
      schemaPaths(def.in as z.core.$ZodType, at, out);
      return schemaPaths(def.out as z.core.$ZodType, at, out);
    case 'union':
      for (const o of def.options as z.core.$ZodType[]) schemaPaths(o, at, out);
      return;
    case 'record':
      return schemaPaths(def.valueType as z.core.$ZodType, `${at}.*`, out);
    case 'array':
      return schemaPaths(def.element as z.core.$ZodType, `${at}[]`, out);
    default:
      return;
  }
}

/** The same paths, from a parsed YAML document. */
function dataPaths(data: unknown, at: string, out: Set<string>): void {
  if (Array.isArray(data)) {
    for (const item of data) dataPaths(item, `${at}[]`, out);
  } else if (typeof data === 'object' && data !== null) {
    for (const [k, v] of Object.entries(data)) {
      const p = at === 'stores' ? 'stores.*' : at ? `${at}.${k}` : k;
      if (at !== 'stores') out.add(p);
      dataPaths(v, p, out);
    }
  }
}

describe('config.example.yaml', () => {
  let dir: string;
  let text: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cg-example-'));
    text = await readFile(EXAMPLE, 'utf8');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads through the real loader with its placeholders filled in, and its keys and stores build', async () => {
    const a = await generateKeypair();
    const b = await generateKeypair();
    const values: Record<string, string> = {
      PUBLIC_KEY: a.publicKey,
      PRIVATE_KEY: a.privateKey,
      PUBLIC_KEY_2: b.publicKey,
      PRIVATE_KEY_2: b.privateKey,
      BEARER_TOKEN: 'example-token-1',
      BEARER_TOKEN_2: 'example-token-2',
      ADMIN_TOKEN: 'example-admin-token',
      NODE_ID: 'cachegate-0',
      S3_ACCESS_KEY: 'AKIAEXAMPLE',
      S3_SECRET_KEY: 'example-secret',
      AZURE_CONNECTION_STRING: 'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;',
      AZURE_ACCOUNT: 'example',
      AZURE_SAS_TOKEN: 'sv=2024-11-04&ss=b&srt=co&sp=rl&sig=abc',
    };
    const filled = text.replace(/\$\{([A-Z0-9_]+)\}/g, (_, name: string) => {
      expect(values, `placeholder ${name}`).toHaveProperty(name);
      return values[name]!;
    });
    expect(filled).not.toMatch(/\$\{[A-Z]/);
    const file = path.join(dir, 'config.yaml');
    await writeFile(file, filled);
    const { config } = await loadConfig({ kind: 'file', path: file });
    expect(Object.keys(config.stores).sort()).toEqual(['archive', 'archive-sas', 'local', 'media']);
    expect(config.cache.max_memory).toBe(256 * 2 ** 20);
    expect(createKeyring(config.auth).length).toBe(2);
    const stores = createStoreRegistry(config.stores, { storeTimeoutMs: config.limits.store_timeout });
    expect(stores.ids().sort()).toEqual(['archive', 'archive-sas', 'local', 'media']);
    await stores.closeAll();
  });

  it('names every key the schema knows, and nothing else', () => {
    const known = new Set<string>();
    schemaPaths(configSchema, '', known);
    const shown = new Set<string>();
    dataPaths(parse(text), '', shown);
    expect([...known].filter((p) => !shown.has(p)), 'keys missing from the example').toEqual([]);
    expect([...shown].filter((p) => !known.has(p)), 'keys the schema does not know').toEqual([]);
  });

  it('gives every key a one-line comment with its default (or says it is required)', () => {
    for (const line of text.split('\n')) {
      const m = /^\s*(?:- )?([a-z_]+):/.exec(line);
      if (!m || /^\s*#/.test(line)) continue;
      const comment = line.includes(' # ') ? line.slice(line.indexOf(' # ')) : '';
      // Section headers and store ids explain themselves through the keys below them.
      const isSection = /:\s*(#.*)?$/.test(line);
      if (isSection) continue;
      expect(comment, `comment on: ${line}`).not.toBe('');
    }
    for (const key of ['max_memory', 'store_timeout', 'shutdown_timeout', 'max_sockets', 'region', 'dsn']) {
      const line = text.split('\n').find((l) => l.trimStart().startsWith(`${key}:`))!;
      expect(line, key).toMatch(/default|required/);
    }
  });
});
