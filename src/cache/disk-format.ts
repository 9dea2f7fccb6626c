/**
 * The disk tier's file format. An entry is one file:
 *
 * ```
 * 0   'CGD1'                 magic and version
 * 4   u32 BE header length
 * 8   u32 BE crc32(header)
 * 12  header JSON            { k: cache key, m: CachedMeta, crc: crc32(body) }
 * 12+n body                  m.size bytes
 * ```
 *
 * A file is accepted only when the magic, both lengths and the header checksum agree; the body
 * checksum is verified before any byte of it is served. So a truncated or flipped file is never
 * mistaken for an entry.
 */
import type { FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import type { CachedMeta } from './types.js';

export const DISK_MAGIC = Buffer.from('CGD1', 'latin1');
export const PREAMBLE_BYTES = 12;
/** Headers are small (a key and metadata); anything larger is corruption. */
export const MAX_HEADER_BYTES = 64 * 1024;

/** What the header of an entry file says. */
export interface DiskHeader {
  /** The cache key the entry belongs to (guards against hash collisions, rebuilds the index). */
  k: string;
  m: CachedMeta;
  /** crc32 of the body. */
  crc: number;
}

/** The bytes before the body: preamble and header. */
export function encodeHead(key: string, meta: CachedMeta, bodyCrc: number): Buffer {
  const header = Buffer.from(JSON.stringify({ k: key, m: meta, crc: bodyCrc } satisfies DiskHeader));
  const pre = Buffer.allocUnsafe(PREAMBLE_BYTES);
  DISK_MAGIC.copy(pre, 0);
  pre.writeUInt32BE(header.length, 4);
  pre.writeUInt32BE(crc32(header), 8);
  return Buffer.concat([pre, header]);
}

/** A parsed, checked header and where the body starts. */
export interface ParsedHead {
  header: DiskHeader;
  bodyOffset: number;
}

/**
 * Read and check the preamble and header of an open entry file of `fileSize` bytes; `undefined`
 * when anything is off (magic, lengths, checksum, JSON, or a file size that does not match).
 */
export async function readHead(fh: FileHandle, fileSize: number): Promise<ParsedHead | undefined> {
  if (fileSize < PREAMBLE_BYTES) return undefined;
  const pre = Buffer.allocUnsafe(PREAMBLE_BYTES);
  const { bytesRead } = await fh.read(pre, 0, PREAMBLE_BYTES, 0);
  if (bytesRead !== PREAMBLE_BYTES || !pre.subarray(0, 4).equals(DISK_MAGIC)) return undefined;
  const headerLen = pre.readUInt32BE(4);
  if (headerLen === 0 || headerLen > MAX_HEADER_BYTES || PREAMBLE_BYTES + headerLen > fileSize) return undefined;
  const raw = Buffer.allocUnsafe(headerLen);
  const got = await fh.read(raw, 0, headerLen, PREAMBLE_BYTES);
  if (got.bytesRead !== headerLen || crc32(raw) !== pre.readUInt32BE(8)) return undefined;
  let header: DiskHeader;
  try {
    header = JSON.parse(raw.toString('utf8')) as DiskHeader;
  } catch {
    return undefined;
  }
  const m = header?.m;
  if (typeof header.k !== 'string' || typeof header.crc !== 'number' || typeof m?.size !== 'number' || typeof m.etag !== 'string') {
    return undefined;
  }
  const bodyOffset = PREAMBLE_BYTES + headerLen;
  if (bodyOffset + m.size !== fileSize) return undefined;
  return { header, bodyOffset };
}
