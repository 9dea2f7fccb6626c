/** Reading an object's bytes straight from a store, bypassing the gateway. */
import type { ObjectStore } from '../../src/stores/types.js';

export async function readAll(store: ObjectStore, key: string): Promise<Buffer | undefined> {
  const res = await store.get(key);
  if (!res) return undefined;
  const chunks: Buffer[] = [];
  for await (const c of res.body as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}
