/**
 * The disk tier: a CacheTier behind memory, bounded in bytes, evicting least recently used
 * entries (whole objects and slices alike), and trustworthy: an entry is written to a temporary
 * file and renamed into place only when its writer finishes, and every body block is checked
 * against its crc32 before a byte of it is served. A bad entry is dropped (the caller fetches
 * again). The index is rebuilt from the directory in the background at startup; meanwhile a
 * lookup opens the entry's file directly. A directory in an older format is discarded at start.
 *
 * Hits do not pay for opening a file: verified descriptors stay open in a bounded LRU, each with
 * its parsed trailer, so a hit is one positional read plus the block checks. A handle is dropped
 * (and closed once no read uses it) when its entry is replaced, deleted or evicted.
 *
 * File names derive from a hash of the cache key, never from the key itself.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync, unlink as unlinkCb } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { crc32 } from './crc32.js';
import { LRUCache } from 'lru-cache';
import { BLOCK_BYTES, BlockChecksums, encodeTrailer, FORMAT_MARKER, readTrailer, type Trailer } from './disk-format.js';
import { BufferPool } from './buffer-pool.js';
import { FileWrites } from './file-writes.js';
import { CorruptEntryError, type BodySpan, type CacheTier, type EntryFile, type LookupOptions, type TierHit } from './tier.js';
import type { CachedMeta, TierEventListener, TierStats } from './types.js';

/** Reads up to this size come back as one verified buffer; larger ones as a verifying stream. */
export const INLINE_READ_MAX_BYTES = 1024 * 1024;
/**
 * Lent read buffers kept for reuse, each INLINE_READ_MAX_BYTES plus two blocks: at most about
 * 72 MiB, held only after a burst of that many concurrent disk hits needed them, and let go
 * within 10 s of not being needed. (Measured with 64 connections on 1 MiB disk hits: 16 pooled
 * buffers cost 2.2 ms of CPU per hit, 64 cost 1.2 ms.)
 */
const POOLED_BUFFERS = 64;
/** A verifying stream reads this many blocks per pread. */
const BLOCKS_PER_READ = 8;
const FANOUT_DIRS = 256;
/** Open entry files kept for hits (each with its trailer); reads in flight may hold more. */
export const OPEN_HANDLES = 256;
/** Entry files in flight together hold at most max_disk divided by this. */
const IN_FLIGHT_FILE_SHARE = 8;
/** How long no entry file is offered after a write to one failed. */
const FILES_OFF_MS = 5_000;

export type DiskErrorOp = 'init' | 'write' | 'read' | 'scan' | 'evict';

export interface DiskTierOptions {
  dir: string;
  maxBytes: number;
  /** Largest entry body; defaults to maxBytes. */
  maxEntryBytes?: number;
  /** Descriptors kept open for hits (default OPEN_HANDLES; 0 opens the file on every hit). */
  openHandles?: number;
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

export class DiskTier implements CacheTier {
  readonly name = 'disk';
  readonly #o: DiskTierOptions;
  readonly #objects: string;
  readonly #tmp: string;
  readonly #index: LRUCache<string, IndexEntry>;
  /**
   * The index's keys again, as a Set: a purge walks it in chunks, and a Set's iterator stays
   * valid (visiting every key still present) while requests change the LRU between chunks.
   */
  readonly #keys = new Set<string>();
  /** Renames and deletes of one key run in order (a delete never removes a newer write's file). */
  readonly #chains = new Map<string, Promise<void>>();
  readonly #pending = new Set<Promise<unknown>>();
  /** Writers still open per key: a delete makes them commit nothing. */
  readonly #open = new Map<string, Set<DiskWriter>>();
  /** Open, checked entry files, by key: a hit reads from one without open/stat/trailer. */
  readonly #handles: LRUCache<string, EntryHandle> | undefined;
  /** Buffers lent to `borrow` lookups: a block-aligned read of up to INLINE_READ_MAX_BYTES fits. */
  readonly #pool = new BufferPool(INLINE_READ_MAX_BYTES + 2 * BLOCK_BYTES, POOLED_BUFFERS);
  /** One per tier: whether the kernel holds writers back is a property of its disk. */
  readonly #writes = new FileWrites();
  #enabled = false;
  /** Body bytes of entry files open for fills (openFile), not yet committed or released. */
  #fileBytesInFlight = 0;
  /** After a write to an entry file failed (a full or failing disk), none is offered until then. */
  #filesOffUntil = -Infinity;
  #scanning = false;
  #scan: Promise<void> = Promise.resolve();

  constructor(options: DiskTierOptions) {
    this.#o = options;
    this.#objects = path.join(options.dir, 'objects');
    this.#tmp = path.join(options.dir, 'tmp');
    this.#index = new LRUCache<string, IndexEntry>({
      maxSize: Math.max(1, options.maxBytes),
      sizeCalculation: (e) => Math.max(1, e.bytes),
      dispose: (entry, key, reason) => {
        // A replaced entry's file was already overwritten by the rename: keep it.
        if (reason === 'set') return;
        this.#keys.delete(key);
        this.#handles?.delete(key);
        if (reason === 'evict') this.#o.onEvent?.({ type: 'evicted', tier: this.name, bytes: entry.bytes });
        // Unlinking never breaks a read in progress: an open descriptor keeps the data.
        unlink(entry.file).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') this.#o.onError?.('evict', err);
        });
      },
    });
    const handles = options.openHandles ?? OPEN_HANDLES;
    this.#handles = handles > 0 ? new LRUCache<string, EntryHandle>({ max: handles, dispose: (h) => h.unref() }) : undefined;
  }

  /**
   * Create the folders, discard a directory of another format, remove leftover temporary files,
   * and start rebuilding the index in the background. A folder that cannot be made turns the
   * tier off; the gateway serves uncached.
   */
  async start(): Promise<void> {
    try {
      const markerFile = path.join(this.#o.dir, 'FORMAT');
      const marker = await readFile(markerFile, 'utf8').catch(() => undefined);
      if (marker !== FORMAT_MARKER) {
        // An older (or unknown) layout: its entries cannot be trusted to mean the same; start empty.
        await rm(this.#objects, { recursive: true, force: true });
        await mkdir(this.#o.dir, { recursive: true });
        await writeFile(markerFile, FORMAT_MARKER);
      }
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

  accepts(bodyBytes: number): boolean {
    return this.#enabled && bodyBytes + 1024 <= Math.min(this.#o.maxEntryBytes ?? this.#o.maxBytes, this.#o.maxBytes);
  }

  has(key: string): boolean {
    return this.#enabled && this.#index.has(key);
  }

  /**
   * The indexed keys, live (for purges: walk it in chunks). Entries the startup scan has not
   * reached yet are not listed.
   */
  keys(): IterableIterator<string> {
    return this.#keys.values();
  }

  #indexSet(key: string, entry: IndexEntry): void {
    // A handle open on the file this entry replaces reads the old version: never used again.
    this.#handles?.delete(key);
    this.#index.set(key, entry);
    // lru-cache drops an entry larger than the whole tier at once (dispose 'set' is not called).
    if (this.#index.has(key)) this.#keys.add(key);
  }

  /** The metadata of an indexed entry, synchronously (entries the startup scan has not reached are not seen). */
  peekIndexed(key: string): CachedMeta | undefined {
    return this.#enabled ? this.#index.peek(key)?.meta : undefined;
  }

  async peek(key: string): Promise<CachedMeta | undefined> {
    if (!this.#enabled) return undefined;
    const entry = this.#index.peek(key);
    if (entry) return entry.meta;
    if (!this.#scanning) return undefined;
    const fh = await open(this.#fileFor(key), 'r').catch(() => undefined);
    if (!fh) return undefined;
    try {
      const t = await readTrailer(fh, (await fh.stat()).size);
      return t?.header.k === key ? t.header.m : undefined;
    } catch {
      return undefined;
    } finally {
      await fh.close().catch(() => {});
    }
  }

  openWrite(key: string, meta: CachedMeta, bodyBytes: number | undefined): Writable | undefined {
    if (!this.#enabled || (bodyBytes !== undefined && !this.accepts(bodyBytes))) return undefined;
    const tmp = path.join(this.#tmp, `${randomBytes(12).toString('hex')}.part`);
    const writer: DiskWriter = new DiskWriter(tmp, meta, bodyBytes, async (w, trailerFor) => {
      this.#forget(key, w);
      if (w.stale) return false;
      return this.#place(key, tmp, () => w.stale, async () => {
        const trailer = trailerFor(key);
        await w.appendAndClose(trailer);
        return { bytes: w.bytes + trailer.length, meta: w.meta };
      });
    }, this.#writes);
    writer.once('close', () => this.#forget(key, writer));
    let set = this.#open.get(key);
    if (!set) this.#open.set(key, (set = new Set()));
    set.add(writer);
    const done = new Promise<void>((resolve) => writer.once('close', resolve));
    this.#track(done);
    writer.on('error', (err) => {
      if ((err as { code?: string }).code !== 'ERR_STREAM_PREMATURE_CLOSE') this.#o.onError?.('write', err);
    });
    return writer;
  }

  /**
   * A slice fill's entry, written in place: its temporary file takes the bytes at their offsets
   * as they arrive and gives them back at once. Writes are synchronous (FileWrites.writeNow), so
   * none is offered while the disk holds writers back. On commit the body is read back and
   * checksummed (what is served is what the file holds), the trailer written, and the file
   * renamed into place.
   */
  openFile(key: string, bodyBytes: number): EntryFile | undefined {
    if (!this.#enabled || !this.accepts(bodyBytes) || this.#writes.throttled || performance.now() < this.#filesOffUntil) return undefined;
    // Entry files count against max_disk only once committed: those in flight together stay
    // within an eighth of it (past that, fills keep their bytes in memory, within the fill budget).
    if (this.#fileBytesInFlight + bodyBytes > this.#o.maxBytes / IN_FLIGHT_FILE_SHARE) return undefined;
    const tmp = path.join(this.#tmp, `${randomBytes(12).toString('hex')}.part`);
    let fd: number;
    try {
      fd = openSync(tmp, 'wx+');
    } catch (err) {
      this.#o.onError?.('write', err);
      return undefined;
    }
    this.#fileBytesInFlight += bodyBytes;
    const file: DiskEntryFile = new DiskEntryFile(fd, tmp, key, bodyBytes, {
      writes: this.#writes,
      place: (trailer, meta) => this.#place(key, tmp, () => file.released, async () => ({ bytes: bodyBytes + trailer.length, meta })),
      error: (err, inWrite) => {
        this.#o.onError?.('write', err);
        if (inWrite) this.#filesOffUntil = performance.now() + FILES_OFF_MS;
      },
      track: (p) => this.#track(p),
      released: () => (this.#fileBytesInFlight -= bodyBytes),
    });
    return file;
  }

  /**
   * Make a finished temporary file `key`'s entry, in the key's order with its deletes: `finish`
   * completes the file and says what it holds; then it is renamed into place and indexed.
   * Nothing happens when `stale()` says the writer was let go of meanwhile.
   */
  async #place(key: string, tmp: string, stale: () => boolean, finish: () => Promise<{ bytes: number; meta: CachedMeta }>): Promise<boolean> {
    let committed = false;
    await this.#chain(key, async () => {
      if (stale()) return;
      const { bytes, meta } = await finish();
      const file = this.#fileFor(key);
      await rename(tmp, file);
      this.#indexSet(key, { file, bytes, meta });
      this.#o.onEvent?.({ type: 'stored', tier: this.name, bytes });
      committed = true;
    });
    return committed;
  }

  delete(key: string): void {
    if (!this.#enabled) return;
    this.#track(
      this.#chain(key, async () => {
        this.#index.delete(key);
        this.#handles?.delete(key);
        await unlink(this.#fileFor(key)).catch(() => {});
      }),
    );
  }

  /**
   * The entry's body, or `range` of it: a verified buffer for reads up to INLINE_READ_MAX_BYTES,
   * otherwise a stream that verifies each block before pushing it. `undefined` when absent, or
   * found bad (then dropped). During the startup scan a key not yet indexed is looked for on disk.
   * With `borrow`, a buffer answer is read into a reused buffer, lent with its `release`.
   */
  async lookup(key: string, range?: BodySpan, options?: LookupOptions): Promise<TierHit | undefined> {
    if (!this.#enabled) return undefined;
    const indexed = this.#index.get(key);
    if (!indexed && !this.#scanning) {
      this.#o.onEvent?.({ type: 'miss', tier: this.name });
      return undefined;
    }
    const handle = await this.#handle(key, indexed);
    if (!handle) {
      this.#o.onEvent?.({ type: 'miss', tier: this.name });
      return undefined;
    }
    let handedOff = false;
    try {
      const t = handle.trailer;
      const len = t.header.len;
      const start = range?.start ?? 0;
      const end = Math.min(range?.end ?? len - 1, len - 1);
      const length = Math.max(0, end - start + 1);
      this.#o.onEvent?.({ type: 'hit', tier: this.name });
      const corrupt = () => this.#drop(key, handle.file, new Error(`checksum mismatch in disk entry ${path.basename(handle.file)}`));
      if (length <= INLINE_READ_MAX_BYTES) {
        const loan = options?.borrow ? this.#pool.lend(alignedBytes(t, start, end)) : undefined;
        let buffer: Buffer | undefined;
        try {
          buffer = await readVerified(handle.fh, t, start, end, loan?.buffer);
        } finally {
          if (!buffer) loan?.release();
        }
        if (!buffer) {
          corrupt();
          return undefined;
        }
        return loan ? { meta: t.header.m, length, buffer, release: loan.release } : { meta: t.header.m, length, buffer };
      }
      handedOff = true;
      return { meta: t.header.m, length, stream: new VerifyingReader(handle, start, end, corrupt) };
    } catch (err) {
      this.#o.onError?.('read', err);
      return undefined;
    } finally {
      if (!handedOff) handle.unref();
    }
  }

  /**
   * A referenced, checked handle on `key`'s file (the caller unrefs it): the cached one, or the
   * file opened and its trailer read. A bad file is dropped; a missing one unindexed.
   */
  async #handle(key: string, indexed: IndexEntry | undefined): Promise<EntryHandle | undefined> {
    const cached = this.#handles?.get(key);
    if (cached) return cached.ref();
    const file = indexed?.file ?? this.#fileFor(key);
    let fh: FileHandle;
    try {
      fh = await open(file, 'r');
    } catch {
      if (indexed && this.#index.peek(key) === indexed) this.#index.delete(key);
      return undefined;
    }
    let t: Trailer | undefined;
    let size = 0;
    try {
      size = (await fh.stat()).size;
      t = await readTrailer(fh, size);
    } catch (err) {
      this.#o.onError?.('read', err);
      await fh.close().catch(() => {});
      return undefined;
    }
    if (!t || t.header.k !== key) {
      await fh.close().catch(() => {});
      this.#drop(key, file, new Error(`corrupt or truncated disk entry ${path.basename(file)}`));
      return undefined;
    }
    if (!indexed && !this.#index.has(key)) this.#indexSet(key, { file, bytes: size, meta: t.header.m });
    const handle = new EntryHandle(fh, file, t);
    // Kept only while the index still names the entry this file was opened for: a replacement
    // committed meanwhile (its rename came first) must not find the old descriptor cached.
    const current = this.#index.peek(key);
    if (this.#handles && current && (indexed === undefined || current === indexed) && current.file === file) {
      this.#handles.set(key, handle.ref());
    }
    return handle;
  }

  stats(): TierStats {
    return { entries: this.#index.size, bytes: this.#index.calculatedSize, maxBytes: this.#o.maxBytes };
  }

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
    this.#handles?.clear();
  }

  #drop(key: string, file: string, err: Error): void {
    this.#o.onError?.('read', err);
    this.#handles?.delete(key);
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
          const t = await readTrailer(fh, st.size);
          // Unreadable trailers are removed now; bodies are checked block by block when read.
          if (!t || this.#fileFor(t.header.k) !== file) await unlink(file).catch(() => {});
          else found.push({ key: t.header.k, entry: { file, bytes: st.size, meta: t.header.m }, mtimeMs: st.mtimeMs });
        } finally {
          await fh.close();
        }
      }
    }
    // Oldest first, so the most recently written end up most recently used.
    found.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const f of found) if (!this.#index.has(f.key)) this.#indexSet(f.key, f.entry);
  }

  #fileFor(key: string): string {
    const h = createHash('sha256').update(key).digest('hex');
    return path.join(this.#objects, h.slice(0, 2), h);
  }

  #forget(key: string, w: DiskWriter): void {
    const set = this.#open.get(key);
    if (!set) return;
    set.delete(w);
    if (set.size === 0) this.#open.delete(key);
  }

  #chain(key: string, op: () => Promise<void>): Promise<void> {
    const prev = this.#chains.get(key) ?? Promise.resolve();
    const next = prev.then(op, op);
    this.#chains.set(key, next);
    void next.finally(() => {
      if (this.#chains.get(key) === next) this.#chains.delete(key);
    }).catch(() => {});
    return next;
  }

  #track(p: Promise<unknown>): void {
    const q = p.catch(() => {});
    this.#pending.add(q);
    void q.finally(() => this.#pending.delete(q));
  }
}

/**
 * Writes one entry's body to a temporary file, checksumming blocks as they pass. The trailer is
 * written (and the file renamed into place) only in `_final`, with the metadata as it is then.
 * The descriptor is closed as soon as the announced body is complete, so a long PUT holding many
 * finished slices open does not hold their descriptors, unless `end()` came with the last bytes
 * (a fill's commit): then the trailer is written through the same descriptor.
 */
class DiskWriter extends Writable {
  stale = false;
  bytes = 0;
  readonly meta: CachedMeta;
  readonly #tmp: string;
  readonly #expected: number | undefined;
  readonly #sums = new BlockChecksums();
  readonly #commit: (w: DiskWriter, trailerFor: (key: string) => Buffer) => Promise<boolean>;
  #fh: FileHandle | undefined;
  #committed = false;
  readonly #writes: FileWrites;

  constructor(
    tmp: string,
    meta: CachedMeta,
    expected: number | undefined,
    commit: (w: DiskWriter, trailerFor: (key: string) => Buffer) => Promise<boolean>,
    writes: FileWrites,
  ) {
    super({ highWaterMark: 1024 * 1024 });
    this.#writes = writes;
    this.#tmp = tmp;
    this.meta = meta;
    this.#expected = expected;
    this.#commit = commit;
  }

  override _construct(cb: (err?: Error | null) => void): void {
    open(this.#tmp, 'wx').then(
      (fh) => {
        this.#fh = fh;
        cb();
      },
      (err: Error) => cb(err),
    );
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#expected !== undefined && this.bytes + chunk.length > this.#expected) {
      cb(new Error(`entry body longer than ${this.#expected} bytes`));
      return;
    }
    this.#sums.update(chunk);
    const at = this.bytes;
    this.bytes += chunk.length;
    const fh = this.#fh!;
    // Destroying the writer closes `fh`: no write may start after that.
    this.#writes.writeAll(fh, chunk, at, () => !this.destroyed).then(async () => {
      // Closed only when more may come later (a PUT's slices): after `end()` the trailer follows
      // at once, and closing and reopening would cost two thread-pool round trips per entry.
      if (this.#expected !== undefined && this.bytes === this.#expected && !this.writableEnded) {
        this.#fh = undefined;
        await fh.close();
      }
      cb();
    }, (err: Error) => cb(err));
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.#expected !== undefined && this.bytes !== this.#expected) {
      cb(new Error(`entry body ended after ${this.bytes} of ${this.#expected} bytes`));
      return;
    }
    const crcs = this.#sums.finish();
    this.#commit(this, (key) => encodeTrailer(key, this.meta, this.bytes, crcs)).then(
      (ok) => {
        this.#committed = ok;
        cb();
      },
      (err: Error) => cb(err),
    );
  }

  /** Append the trailer (reopening the file if its body was complete and closed). */
  async appendAndClose(trailer: Buffer): Promise<void> {
    const fh = this.#fh ?? (await open(this.#tmp, 'r+'));
    this.#fh = undefined;
    try {
      await this.#writes.writeAll(fh, trailer, this.bytes, () => true);
    } finally {
      await fh.close();
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const fh = this.#fh;
    this.#fh = undefined;
    const committed = this.#committed;
    this.stale = true;
    void (async () => {
      await fh?.close().catch(() => {});
      if (!committed) await rm(this.#tmp, { force: true }).catch(() => {});
    })().finally(() => cb(err));
  }
}

/** What an entry file needs of its tier. */
interface EntryFileHooks {
  writes: FileWrites;
  /** Rename the finished file into place (see `DiskTier.#place`). */
  place(trailer: Buffer, meta: CachedMeta): Promise<boolean>;
  /** An I/O failure; `inWrite` when writing the body (the tier then offers no file for a while). */
  error(err: unknown, inWrite: boolean): void;
  track(p: Promise<unknown>): void;
  released(): void;
}

/** See `DiskTier.openFile`. */
class DiskEntryFile implements EntryFile {
  released = false;
  #committing = false;

  constructor(
    readonly fd: number,
    readonly tmp: string,
    readonly key: string,
    readonly bodyBytes: number,
    readonly hooks: EntryFileHooks,
  ) {}

  write(at: number, chunk: Buffer): void {
    if (this.released) throw new Error('entry file released');
    if (at < 0 || at + chunk.length > this.bodyBytes) throw new RangeError(`write of ${chunk.length} bytes at ${at} outside a body of ${this.bodyBytes}`);
    try {
      this.hooks.writes.writeNow(this.fd, chunk, at);
    } catch (err) {
      this.hooks.error(err, true);
      throw err;
    }
  }

  read(at: number, length: number): Buffer {
    if (this.released) throw new Error('entry file released');
    return readFully(this.fd, Buffer.allocUnsafe(length), length, at);
  }

  commit(meta: CachedMeta): Promise<boolean> {
    if (this.released || this.#committing) return Promise.resolve(false);
    this.#committing = true;
    const p = this.#commit(meta).catch((err: unknown) => {
      this.hooks.error(err, false);
      return false;
    });
    this.hooks.track(p);
    return p;
  }

  async #commit(meta: CachedMeta): Promise<boolean> {
    // The block checksums of what the file holds, a MiB per event-loop turn.
    const crcs: number[] = [];
    const scratch = Buffer.allocUnsafe(Math.min(this.bodyBytes, 16 * BLOCK_BYTES));
    for (let at = 0; at < this.bodyBytes; at += scratch.length) {
      if (at > 0) await new Promise<void>((r) => setImmediate(r));
      if (this.released) return false;
      const n = Math.min(scratch.length, this.bodyBytes - at);
      readFully(this.fd, scratch, n, at);
      for (let b = 0; b < n; b += BLOCK_BYTES) crcs.push(crc32(scratch.subarray(b, Math.min(b + BLOCK_BYTES, n))));
    }
    if (this.released) return false;
    const trailer = encodeTrailer(this.key, meta, this.bodyBytes, crcs);
    this.hooks.writes.writeNow(this.fd, trailer, this.bodyBytes);
    return this.hooks.place(trailer, meta);
  }

  /** Close the file; unless it was renamed into place, its temporary name goes too (an ENOENT then is expected). */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.hooks.released();
    try {
      closeSync(this.fd);
    } catch (err) {
      this.hooks.error(err, false);
    }
    unlinkCb(this.tmp, () => {});
  }
}

/** Read exactly `length` bytes at `at` into the front of `buf`. */
function readFully(fd: number, buf: Buffer, length: number, at: number): Buffer {
  for (let got = 0; got < length; ) {
    const n = readSync(fd, buf, got, length - got, at + got);
    if (n === 0) throw new Error(`entry file ended at ${at + got} of ${at + length}`);
    got += n;
  }
  return buf;
}

/** The whole blocks covering `start..end`: what `readVerified` reads. */
function alignedBlocks(t: Trailer, start: number, end: number): { first: number; last: number; from: number; to: number } {
  const bs = t.header.bs;
  const first = Math.floor(start / bs);
  const last = Math.floor(end / bs);
  return { first, last, from: first * bs, to: Math.min((last + 1) * bs, t.header.len) };
}

function alignedBytes(t: Trailer, start: number, end: number): number {
  const { from, to } = alignedBlocks(t, start, end);
  return Math.max(0, to - from);
}

/**
 * Bytes `start..end` of the body, every covering block verified; `undefined` on a mismatch. Read
 * into `into` when given (it must hold the covering blocks), else into a buffer of its own.
 */
async function readVerified(fh: FileHandle, t: Trailer, start: number, end: number, into?: Buffer): Promise<Buffer | undefined> {
  if (end < start) return Buffer.alloc(0);
  const bs = t.header.bs;
  const { first, last, from, to } = alignedBlocks(t, start, end);
  const buf = into ? into.subarray(0, to - from) : Buffer.allocUnsafeSlow(to - from);
  const { bytesRead } = await fh.read(buf, 0, buf.length, from);
  if (bytesRead !== buf.length) return undefined;
  for (let b = first; b <= last; b++) {
    const off = b * bs - from;
    if (crc32(buf.subarray(off, Math.min(off + bs, buf.length))) !== t.crcs[b]) return undefined;
  }
  return buf.subarray(start - from, end - from + 1);
}

/**
 * An open entry file and its checked trailer, shared by the handle cache and reads in flight:
 * closed when the last reference goes.
 */
class EntryHandle {
  #refs = 1;
  constructor(
    readonly fh: FileHandle,
    readonly file: string,
    readonly trailer: Trailer,
  ) {}

  ref(): this {
    this.#refs++;
    return this;
  }

  unref(): void {
    if (--this.#refs === 0) void this.fh.close().catch(() => {});
  }
}

/** Streams bytes `start..end`, reading a few blocks per pread and verifying each before pushing. */
class VerifyingReader extends Readable {
  readonly #handle: EntryHandle;
  readonly #fh: FileHandle;
  readonly #t: Trailer;
  #pos: number;
  readonly #end: number;
  readonly #onCorrupt: () => void;
  #reading = false;

  /** Takes over the caller's reference to `handle`. */
  constructor(handle: EntryHandle, start: number, end: number, onCorrupt: () => void) {
    super({ highWaterMark: BLOCK_BYTES * BLOCKS_PER_READ });
    this.#handle = handle;
    this.#fh = handle.fh;
    this.#t = handle.trailer;
    this.#pos = start;
    this.#end = end;
    this.#onCorrupt = onCorrupt;
  }

  override _read(): void {
    if (this.#reading) return;
    if (this.#pos > this.#end) {
      this.push(null);
      return;
    }
    this.#reading = true;
    const bs = this.#t.header.bs;
    const first = Math.floor(this.#pos / bs);
    const last = Math.min(first + BLOCKS_PER_READ - 1, Math.floor(this.#end / bs));
    const upTo = Math.min(this.#end, (last + 1) * bs - 1);
    readVerified(this.#fh, this.#t, this.#pos, upTo).then(
      (buf) => {
        this.#reading = false;
        if (this.destroyed) return;
        if (!buf) {
          this.#onCorrupt();
          this.destroy(new CorruptEntryError('disk block checksum mismatch'));
          return;
        }
        this.#pos = upTo + 1;
        if (this.push(buf)) this._read();
      },
      (err: Error) => {
        this.#reading = false;
        this.destroy(err);
      },
    );
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#handle.unref();
    cb(err);
  }
}

function hex2(i: number): string {
  return i.toString(16).padStart(2, '0');
}
