/**
 * The disk tier's file format, version 2. An entry is one file, body first, so a writer can stream
 * a body before it knows the validators (a PUT learns its ETag at the end):
 *
 * ```
 * 0        body                       len bytes
 * len      crc table                  one u32 BE crc32 per BLOCK_BYTES block of the body
 * …        header JSON                { k: cache key, m: CachedMeta, len, bs: block size }
 * end-16   footer                     'CGS2', u32 BE header length, u32 BE crc32(crc table ‖ header),
 *                                     u32 BE crc table length
 * ```
 *
 * A file is accepted only when the magic, the lengths and the trailer checksum agree; each body
 * block is checked against its crc before any byte of it is served, so a torn or flipped file is
 * never served and a large entry needs no verification pass before its first byte.
 */
import type { FileHandle } from 'node:fs/promises';
import { crc32 } from './crc32.js';
import type { CachedMeta } from './types.js';

export const FORMAT_MAGIC = Buffer.from('CGS2', 'latin1');
/** Written in the cache directory; a directory without it (or with another) is discarded at start. */
export const FORMAT_MARKER = 'cachegate disk format 2\n';
export const FOOTER_BYTES = 16;
/** Checksum granularity: a block is verified before it is written to a socket. */
export const BLOCK_BYTES = 64 * 1024;
/** Headers are small (a key and metadata); anything larger is corruption. */
export const MAX_HEADER_BYTES = 64 * 1024;

export interface DiskHeader {
  k: string;
  m: CachedMeta;
  len: number;
  bs: number;
}

/** A parsed, checked trailer. */
export interface Trailer {
  header: DiskHeader;
  /** One crc32 per block. */
  crcs: Uint32Array;
}

/** How many checksum blocks a body of `len` bytes has. */
export function blockCount(len: number, bs = BLOCK_BYTES): number {
  return Math.ceil(len / bs);
}

/** The bytes after the body: crc table, header, footer. */
export function encodeTrailer(key: string, meta: CachedMeta, len: number, crcs: number[]): Buffer {
  const table = Buffer.allocUnsafe(crcs.length * 4);
  crcs.forEach((c, i) => table.writeUInt32BE(c >>> 0, i * 4));
  const header = Buffer.from(JSON.stringify({ k: key, m: meta, len, bs: BLOCK_BYTES } satisfies DiskHeader));
  const footer = Buffer.allocUnsafe(FOOTER_BYTES);
  FORMAT_MAGIC.copy(footer, 0);
  footer.writeUInt32BE(header.length, 4);
  footer.writeUInt32BE(crc32(header, crc32(table)), 8);
  footer.writeUInt32BE(table.length, 12);
  return Buffer.concat([table, header, footer]);
}

/** Read and check the trailer of an open entry file of `fileSize` bytes; `undefined` when anything is off. */
export async function readTrailer(fh: FileHandle, fileSize: number): Promise<Trailer | undefined> {
  if (fileSize < FOOTER_BYTES) return undefined;
  const footer = Buffer.allocUnsafe(FOOTER_BYTES);
  const { bytesRead } = await fh.read(footer, 0, FOOTER_BYTES, fileSize - FOOTER_BYTES);
  if (bytesRead !== FOOTER_BYTES || !footer.subarray(0, 4).equals(FORMAT_MAGIC)) return undefined;
  const headerLen = footer.readUInt32BE(4);
  const tableLen = footer.readUInt32BE(12);
  if (headerLen === 0 || headerLen > MAX_HEADER_BYTES || tableLen % 4 !== 0 || headerLen + tableLen + FOOTER_BYTES > fileSize) return undefined;
  const raw = Buffer.allocUnsafe(tableLen + headerLen);
  const bodyLen = fileSize - FOOTER_BYTES - headerLen - tableLen;
  const got = await fh.read(raw, 0, raw.length, bodyLen);
  if (got.bytesRead !== raw.length) return undefined;
  const table = raw.subarray(0, tableLen);
  const headerRaw = raw.subarray(tableLen);
  if (crc32(headerRaw, crc32(table)) !== footer.readUInt32BE(8)) return undefined;
  let header: DiskHeader;
  try {
    header = JSON.parse(headerRaw.toString('utf8')) as DiskHeader;
  } catch {
    return undefined;
  }
  const m = header?.m;
  if (typeof header.k !== 'string' || header.len !== bodyLen || header.bs !== BLOCK_BYTES || typeof m?.size !== 'number' || typeof m.etag !== 'string') {
    return undefined;
  }
  if (blockCount(bodyLen) * 4 !== tableLen) return undefined;
  const crcs = new Uint32Array(tableLen / 4);
  for (let i = 0; i < crcs.length; i++) crcs[i] = table.readUInt32BE(i * 4);
  return { header, crcs };
}

/** Running per-block crc32 of a body written in arbitrary chunks. */
export class BlockChecksums {
  readonly crcs: number[] = [];
  #crc = 0;
  #inBlock = 0;

  update(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const take = Math.min(BLOCK_BYTES - this.#inBlock, chunk.length - at);
      this.#crc = crc32(chunk.subarray(at, at + take), this.#crc);
      this.#inBlock += take;
      at += take;
      if (this.#inBlock === BLOCK_BYTES) {
        this.crcs.push(this.#crc);
        this.#crc = 0;
        this.#inBlock = 0;
      }
    }
  }

  /** All block crcs, the last partial block included. */
  finish(): number[] {
    if (this.#inBlock > 0) {
      this.crcs.push(this.#crc);
      this.#crc = 0;
      this.#inBlock = 0;
    }
    return this.crcs;
  }
}
