/**
 * A directory as a store. Keys map to files below `root`; a key can never reach outside it,
 * even through a symlink, because every resolved path is checked against the real root.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type Stats } from 'node:fs';
import { mkdir, open, readFile, realpath, rename, rm, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { KeyRejectedError, StoreError, type StoreOp } from '../errors.js';
import type { FsStoreConfig } from '../config/schema.js';
import { abortSignalOf } from './abort.js';
import type { GetOptions, GetResult, ObjectMeta, ObjectStore, PutOptions, PutResult, Revalidation } from './types.js';

/** Temporary uploads live here, on the same filesystem as the objects, so rename is atomic. */
const TMP_DIR_NAME = '.cachegate-tmp';
/**
 * A directory has no place for a Content-Type, so it is kept in a sidecar named by the key's
 * hash, together with the size and mtime it belongs to: a file replaced behind the gateway's
 * back never inherits a stale type.
 */
const META_DIR_NAME = '.cachegate-meta';
const RESERVED_NAMES = new Set([TMP_DIR_NAME, META_DIR_NAME]);

interface Sidecar {
  contentType: string;
  size: number;
  mtimeMs: number;
}
const READ_CHUNK_BYTES = 256 * 1024;

const NOT_FOUND_CODES = new Set(['ENOENT', 'ENOTDIR', 'EISDIR']);

/**
 * Filesystem errors that the key, not the store, is to blame for: a 4xx for the client, never a
 * store failure. On a write, a key that names a folder or runs through a file is a conflict with
 * what is stored; a segment longer than the filesystem allows is a 414 on every operation.
 */
function keyFault(err: unknown, op: StoreOp): KeyRejectedError | undefined {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENAMETOOLONG') return new KeyRejectedError('GW_ERR_URI_TOO_LONG', 'object key has a segment longer than the store allows');
  if (op === 'put' && (code === 'EISDIR' || code === 'ENOTDIR' || code === 'EEXIST' || code === 'ENOTEMPTY')) {
    return new KeyRejectedError('GW_ERR_CONFLICT', 'object key names a folder, or runs through an object');
  }
  return undefined;
}

/** Create a store on a local directory (created if missing). */
export function createFsStore(id: string, config: Pick<FsStoreConfig, 'root'>): ObjectStore {
  return new FsStore(id, path.resolve(config.root));
}

class FsStore implements ObjectStore {
  readonly type = 'fs';
  readonly id: string;
  readonly #root: string;
  #realRoot: Promise<string> | undefined;

  constructor(id: string, root: string) {
    this.id = id;
    this.#root = root;
  }

  async head(key: string): Promise<ObjectMeta | undefined> {
    const file = await this.#resolve(key, 'head');
    if (!file) return undefined;
    try {
      const st = await stat(file);
      return st.isFile() ? metaFromStats(st, await this.#readSidecar(key, st)) : undefined;
    } catch (err) {
      return this.#notFoundOrThrow(err, 'head');
    }
  }

  /** A directory has no conditional requests: the ETag (inode, mtime, size) is compared here. */
  async revalidate(key: string, etag: string): Promise<Revalidation> {
    const meta = await this.head(key);
    if (!meta) return { kind: 'gone' };
    return meta.etag === etag ? { kind: 'not_modified' } : { kind: 'modified', meta };
  }

  async get(key: string, opts: GetOptions = {}): Promise<GetResult | undefined> {
    const file = await this.#resolve(key, 'get');
    if (!file) return undefined;
    let fh: FileHandle;
    try {
      fh = await open(file, 'r');
    } catch (err) {
      return this.#notFoundOrThrow(err, 'get');
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) {
        await fh.close();
        return undefined;
      }
      const meta = metaFromStats(st, await this.#readSidecar(key, st));
      if (opts.ifMatch !== undefined && opts.ifMatch !== meta.etag) {
        await fh.close();
        throw new StoreError(this.id, 'get', new Error('object changed (If-Match)'), 'precondition_failed');
      }
      const range = opts.range;
      if (range && range.start >= st.size) {
        await fh.close();
        throw new StoreError(this.id, 'get', new Error(`range starts past the end (${st.size} bytes)`), 'range_not_satisfiable');
      }
      // The stream owns the handle from here: it closes it on end, error or destroy. Its read
      // buffer is no larger than what it will read: a 1 KiB object read through 256 KiB buffers
      // left 256 times its size as garbage, which V8 collects late (RSS of a tier full of small
      // entries grew by a multiple of what they cost).
      const want = Math.min(range?.end ?? st.size - 1, st.size - 1) - (range?.start ?? 0) + 1;
      const body: Readable = createReadStream('', {
        fd: fh,
        highWaterMark: Math.max(1, Math.min(READ_CHUNK_BYTES, want)),
        autoClose: true,
        ...(range ? { start: range.start, end: range.end } : {}),
      });
      return range ? { meta, body, range } : { meta, body };
    } catch (err) {
      await fh.close().catch(() => {});
      throw err instanceof StoreError ? err : new StoreError(this.id, 'get', err);
    }
  }

  async put(key: string, body: Readable, opts: PutOptions = {}): Promise<PutResult> {
    const file = await this.#resolve(key, 'put', true);
    if (!file) throw new KeyRejectedError('GW_ERR_FORBIDDEN', "object key names the store's reserved folder");
    const tmpDir = path.join(this.#root, TMP_DIR_NAME);
    const tmp = path.join(tmpDir, `${randomBytes(12).toString('hex')}.part`);
    try {
      await mkdir(tmpDir, { recursive: true });
      await mkdir(path.dirname(file), { recursive: true });
      const out = createWriteStream(tmp, { flags: 'wx' });
      await pipeline(body, out, opts.signal ? { signal: abortSignalOf(opts.signal) } : {});
      // Flush to disk before the rename makes the object visible.
      const fh = await open(tmp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, file);
      const st = await stat(file);
      await this.#writeSidecar(key, st, opts.contentType);
      const meta = metaFromStats(st, opts.contentType);
      return { etag: meta.etag, lastModified: meta.lastModified };
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => {});
      if (err instanceof StoreError || err instanceof KeyRejectedError) throw err;
      throw keyFault(err, 'put') ?? new StoreError(this.id, 'put', err);
    }
  }

  async delete(key: string): Promise<void> {
    const file = await this.#resolve(key, 'delete');
    if (!file) return;
    try {
      await unlink(file);
      await rm(this.#sidecarPath(key), { force: true });
    } catch (err) {
      if (!NOT_FOUND_CODES.has((err as NodeJS.ErrnoException).code ?? '')) throw new StoreError(this.id, 'delete', err);
    }
  }

  #sidecarPath(key: string): string {
    return path.join(this.#root, META_DIR_NAME, `${createHash('sha256').update(key).digest('hex')}.json`);
  }

  async #readSidecar(key: string, st: Stats): Promise<string | undefined> {
    try {
      const s = JSON.parse(await readFile(this.#sidecarPath(key), 'utf8')) as Sidecar;
      return s.size === st.size && s.mtimeMs === st.mtimeMs && typeof s.contentType === 'string' ? s.contentType : undefined;
    } catch {
      // No sidecar (or an unreadable one): the type then comes from the extension or magic bytes.
      return undefined;
    }
  }

  async #writeSidecar(key: string, st: Stats, contentType: string | undefined): Promise<void> {
    const file = this.#sidecarPath(key);
    if (!contentType) {
      await rm(file, { force: true });
      return;
    }
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    const sidecar: Sidecar = { contentType, size: st.size, mtimeMs: st.mtimeMs };
    await writeFile(tmp, JSON.stringify(sidecar));
    await rename(tmp, file);
  }

  async close(): Promise<void> {}

  /**
   * Map a key to a path under the root, or `undefined` when the key cannot name an object here
   * (the reserved temp folder). Throws if the resolved path would leave the root.
   */
  async #resolve(key: string, op: StoreOp, forWrite = false): Promise<string | undefined> {
    const segments = key.split('/');
    if (RESERVED_NAMES.has(segments[0]!)) return undefined;
    if (segments.some((s) => s === '' || s === '.' || s === '..' || s.includes('\\') || s.includes('\0'))) {
      throw new KeyRejectedError('GW_ERR_INVALID_KEY', 'invalid object key');
    }
    const file = path.join(this.#root, ...segments);
    const realRoot = await this.#getRealRoot(op);
    // Resolve symlinks in the parent folder: a link inside the root must not lead outside it.
    let parentReal: string;
    try {
      parentReal = await realpath(path.dirname(file));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (NOT_FOUND_CODES.has(code)) {
        return forWrite ? this.#checkInside(realRoot, path.join(realRoot, ...segments)) : undefined;
      }
      throw keyFault(err, op) ?? new StoreError(this.id, op, err);
    }
    const candidate = this.#checkInside(realRoot, path.join(parentReal, path.basename(file)));
    // rename and unlink act on a link itself; reads follow it, so its target must be inside too.
    if (forWrite || op === 'delete') return candidate;
    let target: string;
    try {
      target = await realpath(candidate);
    } catch (err) {
      if (NOT_FOUND_CODES.has((err as NodeJS.ErrnoException).code ?? '')) return undefined;
      throw keyFault(err, op) ?? new StoreError(this.id, op, err);
    }
    return this.#checkInside(realRoot, target);
  }

  /** A path inside the real root, or a 403: a key (through a link) may never leave it. */
  #checkInside(realRoot: string, candidate: string): string {
    if (candidate !== realRoot && candidate.startsWith(realRoot + path.sep)) return candidate;
    throw new KeyRejectedError('GW_ERR_FORBIDDEN', 'object key leads out of the store root');
  }

  #getRealRoot(op: StoreOp): Promise<string> {
    this.#realRoot ??= (async () => {
      await mkdir(this.#root, { recursive: true });
      return realpath(this.#root);
    })();
    return this.#realRoot.catch((err: unknown) => {
      this.#realRoot = undefined;
      throw new StoreError(this.id, op, err);
    });
  }

  #notFoundOrThrow(err: unknown, op: StoreOp): undefined {
    if (NOT_FOUND_CODES.has((err as NodeJS.ErrnoException).code ?? '')) return undefined;
    throw keyFault(err, op) ?? new StoreError(this.id, op, err);
  }
}

function metaFromStats(st: Stats, contentType: string | undefined): ObjectMeta {
  // Inode, mtime and size in hex: a replaced file (a rename gives a new inode) gets a new
  // validator even within the same millisecond.
  const etag = `"${st.ino.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}-${st.size.toString(16)}"`;
  return { size: st.size, etag, lastModified: st.mtime, contentType };
}
