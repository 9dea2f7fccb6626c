/**
 * An object's Content-Type is resolved once, the same whichever range is read first: a sliced
 * extensionless object is not sniffed (its first read may start past its first bytes), an
 * object of one slice is, from the first read, which always covers its first bytes. Real
 * sockets, a directory store, a fresh gateway per access order.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH, startGateway } from '../helpers/gateway.js';

const MiB = 2 ** 20;
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe('content type of an extensionless object, whichever range comes first', () => {
  let root: string;

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'cg-ctype-'));
    // Starts like a PNG, so sniffing would call it image/png.
    await writeFile(path.join(root, 'sliced'), Buffer.concat([PNG_MAGIC, randomBytes(3 * MiB)]));
    await writeFile(path.join(root, 'small'), Buffer.concat([PNG_MAGIC, randomBytes(100_000)]));
  });

  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  /** Content-Types of `ranges` read in order from a fresh gateway (undefined: the whole object). */
  async function typesInOrder(key: string, ranges: (string | undefined)[]): Promise<string[]> {
    const gw = await startGateway({ cache: { max_memory: '32MiB', slice_size: '1MiB' }, stores: { local: { type: 'fs', root } } });
    try {
      const types: string[] = [];
      for (const range of ranges) {
        const res = await fetch(`${gw.url}/local/${key}`, { headers: { ...AUTH, ...(range ? { range } : {}) } });
        expect(res.status).toBe(range ? 206 : 200);
        await res.arrayBuffer();
        types.push(res.headers.get('content-type')!);
      }
      return types;
    } finally {
      await gw.close();
    }
  }

  it('types a sliced object the same when a range past its first slice comes first as when its start does', async () => {
    const seekFirst = await typesInOrder('sliced', ['bytes=2500000-2500099', undefined, 'bytes=0-99']);
    const startFirst = await typesInOrder('sliced', [undefined, 'bytes=2500000-2500099']);
    expect(new Set([...seekFirst, ...startFirst])).toEqual(new Set(['application/octet-stream']));
  });

  it('sniffs an object of one slice from its first read, whatever range it asks', async () => {
    const tailFirst = await typesInOrder('small', ['bytes=90000-90099', undefined]);
    const wholeFirst = await typesInOrder('small', [undefined, 'bytes=90000-90099']);
    expect(new Set([...tailFirst, ...wholeFirst])).toEqual(new Set(['image/png']));
  });
});
