/**
 * The disk tier: the second tier behind memory, bounded in bytes, evicting least recently used
 * entries, and trustworthy: every entry is written to a temporary file and renamed into place,
 * every read checks the header and the body checksum before a byte goes out, and a bad entry is
 * dropped (the caller refetches). The index is rebuilt from the directory in the background at
 * startup; meanwhile a lookup opens the entry's file directly.
 *
 * File names derive from a hash of the cache key, never from the key itself.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { LRUCache } from 'lru-cache';
import { encodeHead, readHead } from './disk-format.js';
import type { CachedMeta, TierEventListener, TierStats } from './types.js';

/** Entries up to this size are read whole and verified in memory; larger ones in a streaming pass. */
export const INLINE_READ_MAX_BYTES = 8 * 2 ** 20;
/** Read buffer for streaming large entries to a socket. */
export const DISK_STREAM_CHUNK_BYTES = 512 * 1024;
const VERIFY_CHUNK_BYTES = 1024 * 1024;
const FANOUT_DIRS = 256;

/**
 * A disk hit: small entries as a verified buffer; large ones as a verified open file. The
 * caller must call exactly one of `open` (a stream of the body, or of `start..end`, that owns
 * and closes the descriptor) or `close`.
 */
export type DiskHit =
  | { kind: 'buffer'; meta: CachedMeta; body: Buffer }
  | { kind: 'file'; meta: CachedMeta; open(start?: number, end?: number): Readable; close(): void };

export type DiskErrorOp = 'init' | 'write' | 'read' | 'scan' | 'evict';

export interface DiskTierOptions {
  dir: string;
  maxBytes: number;
  /** Largest entry body; defaults to maxBytes. */
  maxEntryBytes?: number;
  onEvent?: TierEventListener;
  /** Disk problems: logged and counted by the caller; the gateway keeps serving. */
  onError?: (op: DiskErrorOp, err: unknown) => void;
}

interface IndexEntry {
  file: string;
  /** Whole file size: what the entry costs on disk. */
  bytes: number;
  meta: CachedMeta;
}

/** Build the disk tier; call `start()` before use. */
export function createDiskTier(options: DiskTierOptions): DiskTier {
  return new DiskTier(options);
}

export class DiskTier {
  readonly name = 'disk';
  readonly #o: DiskTierOptions;
  readonly #objects: string;
  readonly #tmp: string;
  readonly #index: LRUCache<string, IndexEntry>;
  /** Operations on one key run in order (a delete never removes a newer write's file). */
  readonly #chains = new Map<string, Promise<void>>();
  readonly #pending = new Set<Promise<void>>();
  #enabled = false;
  #scanning = false;
  #scan: Promise<void> = Promise.resolve();

  constructor(options: DiskTierOptions) {
    this.#o = options;
    this.#objects = path.join(options.dir, 'objects');
    this.#tmp = path.join(options.dir, 'tmp');
    this.#index = new LRUCache<string, IndexEntry>({
      maxSize: Math.max(1, options.maxBytes),
      sizeCalculation: (e) => Math.max(1, e.bytes),
      dispose: (entry, _key, reason) => {
        // A replaced entry's file was already overwritten by the rename: keep it.
        if (reason === 'set') return;
        if (reason === 'evict') this.#o.onEvent?.({ type: 'evicted', tier: this.name, bytes: entry.bytes });
        // Unlinking never breaks a read in progress: an open descriptor keeps the data.
        unlink(entry.file).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') this.#o.onError?.('evict', err);
        });
      },
    });
  }

  /**
   * Create the folders, remove leftover temporary files, and start rebuilding the index in the
   * background. A folder that cannot be made turns the tier off; the gateway serves uncached.
   */
  async start(): Promise<void> {
    try {
      await rm(this.#tmp, { recursive: true, force: true });
      await mkdir(this.#tmp, { recursive: true });
      await Promise.all(Array.from({ length: FANOUT_DIRS }, (_, i) => mkdir(path.join(this.#objects, hex2(i)), { recursive: true })));
      this.#enabled = true;
    } catch (err) {
      this.#o.onError?.('init', err);
      return;
    }
    this.#scanning = true;
    this.#scan = this.#rebuildIndex()
      .catch((err: unknown) => this.#o.onError?.('scan', err))
      .finally(() => (this.#scanning = false));
  }

  /** Resolves when the background index rebuild has finished. */
  scanned(): Promise<void> {
    return this.#scan;
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  /** Whether an entry with a body of `bodyBytes` could be held. */
  accepts(bodyBytes: number): boolean {
    return this.#enabled && bodyBytes + 1024 <= Math.min(this.#o.maxEntryBytes ?? this.#o.maxBytes, this.#o.maxBytes);
  }

  /** Write an entry in the background (after the bytes arrived: no second fetch). */
  store(key: string, meta: CachedMeta, body: Buffer): void {
    if (!this.accepts(body.length)) return;
    this.#track(this.#chain(key, () => this.#write(key, meta, body)));
  }

  /** Drop an entry (in order with writes to the same key). */
  delete(key: string): void {
    if (!this.#enabled) return;
    this.#track(
      this.#chain(key, async () => {
        this.#index.delete(key);
        await unlink(this.#fileFor(key)).catch(() => {});
      }),
    );
  }

  /** Whether the index holds `key` (without touching recency). */
  has(key: string): boolean {
    return this.#enabled && this.#index.has(key);
  }

  /** Metadata only (HEAD), without reading the body. */
  async peek(key: string): Promise<CachedMeta | undefined> {
    if (!this.#enabled) return undefined;
    const entry = this.#index.get(key);
    if (entry) return entry.meta;
    if (!this.#scanning) return undefined;
    const fh = await open(this.#fileFor(key), 'r').catch(() => undefined);
    if (!fh) return undefined;
    try {
      const head = await readHead(fh, (await fh.stat()).size);
      return head?.header.k === key ? head.header.m : undefined;
    } finally {
      await fh.close();
    }
  }

  /**
   * A verified entry, or `undefined` (absent, or found bad and dropped). During the startup scan
   * a key not yet indexed is looked for on disk directly.
   */
  async lookup(key: string): Promise<DiskHit | undefined> {
    if (!this.#enabled) return undefined;
    const indexed = this.#index.get(key);
    if (!indexed && !this.#scanning) {
      this.#o.onEvent?.({ type: 'miss', tier: this.name });
      return undefined;
    }
    const file = indexed?.file ?? this.#fileFor(key);
    let fh: FileHandle;
    try {
      fh = await open(file, 'r');
    } catch {
      if (indexed) this.#index.delete(key);
      this.#o.onEvent?.({ type: 'miss', tier: this.name });
      return undefined;
    }
    let handedOff = false;
    try {
      const size = (await fh.stat()).size;
      const head = await readHead(fh, size);
      const bad = () => {
        this.#drop(key, file, new Error(`corrupt or truncated disk entry ${path.basename(file)}`));
        return undefined;
      };
      if (!head || head.header.k !== key) return bad();
      const { m: meta, crc } = head.header;
      if (meta.size <= INLINE_READ_MAX_BYTES) {
        // Small: one read, verified in memory before anything is served.
        const body = Buffer.allocUnsafe(meta.size);
        const { bytesRead } = await fh.read(body, 0, meta.size, head.bodyOffset);
        if (bytesRead !== meta.size || crc32(body) !== crc) return bad();
        this.#hit(key, indexed, file, size, meta);
        return { kind: 'buffer', meta, body };
      }
      // Large: verified in a streaming pass first, then streamed (from the page cache) to the client.
      if (!(await this.#bodyMatches(fh, head.bodyOffset, meta.size, crc))) return bad();
      this.#hit(key, indexed, file, size, meta);
      handedOff = true;
      return {
        kind: 'file',
        meta,
        open: (start = 0, end = meta.size - 1) => this.#stream(fh, head.bodyOffset, start, end),
        close: () => void fh.close().catch(() => {}),
      };
    } catch (err) {
      this.#o.onError?.('read', err);
      return undefined;
    } finally {
      // A 'file' hit hands the descriptor to the caller (its stream, or close()).
      if (!handedOff) await fh.close().catch(() => {});
    }
  }

  stats(): TierStats {
    return { entries: this.#index.size, bytes: this.#index.calculatedSize, maxBytes: this.#o.maxBytes };
  }

  /** Every entry's accounted size, for invariant checks. */
  *sizes(): Generator<number> {
    for (const e of this.#index.values()) yield e.bytes;
  }

  /** Resolves when every write and delete queued so far has finished. */
  async flushed(): Promise<void> {
    await Promise.allSettled([...this.#pending]);
  }

  /** Let pending writes finish (up to `timeoutMs`); unfinished ones leave only temp files, removed at the next start. */
  async close(timeoutMs = 10_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.#pending, this.#scan]),
      new Promise<void>((r) => (timer = setTimeout(r, timeoutMs))),
    ]);
    clearTimeout(timer);
    this.#enabled = false;
  }

  #hit(key: string, indexed: IndexEntry | undefined, file: string, bytes: number, meta: CachedMeta): void {
    if (!indexed) this.#index.set(key, { file, bytes, meta });
    this.#o.onEvent?.({ type: 'hit', tier: this.name });
  }

  async #write(key: string, meta: CachedMeta, body: Buffer): Promise<void> {
    const tmp = path.join(this.#tmp, `${randomBytes(12).toString('hex')}.part`);
    const file = this.#fileFor(key);
    const head = encodeHead(key, meta, crc32(body));
    try {
      const fh = await open(tmp, 'wx');
      try {
        await fh.writev([head, body]);
      } finally {
        await fh.close();
      }
      // No fsync: a torn file after a crash fails its checksums and is dropped, never served.
      await rename(tmp, file);
      this.#index.set(key, { file, bytes: head.length + body.length, meta });
      this.#o.onEvent?.({ type: 'stored', tier: this.name, bytes: head.length + body.length });
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => {});
      this.#o.onError?.('write', err);
    }
  }

  async #bodyMatches(fh: FileHandle, offset: number, size: number, expected: number): Promise<boolean> {
    const buf = Buffer.allocUnsafe(Math.min(VERIFY_CHUNK_BYTES, Math.max(size, 1)));
    let crc = 0;
    for (let pos = 0; pos < size; ) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), offset + pos);
      if (bytesRead === 0) return false;
      crc = crc32(buf.subarray(0, bytesRead), crc);
      pos += bytesRead;
    }
    return crc === expected;
  }

  #stream(fh: FileHandle, bodyOffset: number, start: number, end: number): Readable {
    return createReadStream('', {
      fd: fh,
      start: bodyOffset + start,
      end: bodyOffset + end,
      highWaterMark: DISK_STREAM_CHUNK_BYTES,
      autoClose: true,
    });
  }

  #drop(key: string, file: string, err: Error): void {
    this.#o.onError?.('read', err);
    this.#index.delete(key);
    unlink(file).catch(() => {});
  }

  async #rebuildIndex(): Promise<void> {
    const found: { key: string; entry: IndexEntry; mtimeMs: number }[] = [];
    for (let i = 0; i < FANOUT_DIRS; i++) {
      const dir = path.join(this.#objects, hex2(i));
      for (const name of await readdir(dir)) {
        const file = path.join(dir, name);
        const fh = await open(file, 'r').catch(() => undefined);
        if (!fh) continue;
        try {
          const st = await fh.stat();
          const head = await readHead(fh, st.size);
          // Unreadable headers are removed now; bodies are checked when read.
          if (!head || this.#fileFor(head.header.k) !== file) await unlink(file).catch(() => {});
          else found.push({ key: head.header.k, entry: { file, bytes: st.size, meta: head.header.m }, mtimeMs: st.mtimeMs });
        } finally {
          await fh.close();
        }
      }
    }
    // Oldest first, so the most recently written end up most recently used.
    found.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const f of found) if (!this.#index.has(f.key)) this.#index.set(f.key, f.entry);
  }

  #fileFor(key: string): string {
    const h = createHash('sha256').update(key).digest('hex');
    return path.join(this.#objects, h.slice(0, 2), h);
  }

  #chain(key: string, op: () => Promise<void>): Promise<void> {
    const prev = this.#chains.get(key) ?? Promise.resolve();
    const next = prev.then(op, op);
    this.#chains.set(key, next);
    void next.finally(() => {
      if (this.#chains.get(key) === next) this.#chains.delete(key);
    });
    return next;
  }

  #track(p: Promise<void>): void {
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }
}

function hex2(i: number): string {
  return i.toString(16).padStart(2, '0');
}

