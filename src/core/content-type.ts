/**
 * Choosing an object's Content-Type, in cachegate's order: the store's own type unless it is a
 * generic octet-stream, then the key's extension, then magic bytes, then octet-stream.
 */

export const OCTET_STREAM = 'application/octet-stream';
/** How many leading bytes the magic-byte sniffer looks at. */
export const SNIFF_BYTES = 64;

const GENERIC_TYPES = new Set(['', OCTET_STREAM, 'binary/octet-stream', 'application/x-download', 'application/unknown']);

const BY_EXTENSION: Readonly<Record<string, string>> = {
  // images
  png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp',
  avif: 'image/avif', svg: 'image/svg+xml', ico: 'image/x-icon', bmp: 'image/bmp', tif: 'image/tiff',
  tiff: 'image/tiff', heic: 'image/heic',
  // video and audio
  mp4: 'video/mp4', m4v: 'video/mp4', webm: 'video/webm', mov: 'video/quicktime', mkv: 'video/x-matroska',
  ts: 'video/mp2t', m3u8: 'application/vnd.apple.mpegurl', mpd: 'application/dash+xml', ogv: 'video/ogg',
  mp3: 'audio/mpeg', m4a: 'audio/mp4', aac: 'audio/aac', wav: 'audio/wav', ogg: 'audio/ogg', oga: 'audio/ogg',
  opus: 'audio/opus', flac: 'audio/flac', weba: 'audio/webm',
  // text and web
  html: 'text/html; charset=utf-8', htm: 'text/html; charset=utf-8', css: 'text/css; charset=utf-8',
  js: 'text/javascript; charset=utf-8', mjs: 'text/javascript; charset=utf-8', json: 'application/json',
  txt: 'text/plain; charset=utf-8', csv: 'text/csv; charset=utf-8', xml: 'application/xml', md: 'text/markdown; charset=utf-8',
  vtt: 'text/vtt; charset=utf-8', srt: 'application/x-subrip', wasm: 'application/wasm', map: 'application/json',
  // documents and archives
  pdf: 'application/pdf', zip: 'application/zip', gz: 'application/gzip', tgz: 'application/gzip',
  tar: 'application/x-tar', bz2: 'application/x-bzip2', xz: 'application/x-xz', zst: 'application/zstd',
  '7z': 'application/x-7z-compressed', woff: 'font/woff', woff2: 'font/woff2', ttf: 'font/ttf', otf: 'font/otf',
  parquet: 'application/vnd.apache.parquet',
};

/** The type for a key's extension, if it has a known one. */
export function typeFromExtension(key: string): string | undefined {
  const name = key.slice(key.lastIndexOf('/') + 1);
  const dot = name.lastIndexOf('.');
  if (dot <= 0) return undefined;
  return BY_EXTENSION[name.slice(dot + 1).toLowerCase()];
}

function startsWith(b: Buffer, sig: Uint8Array, offset = 0): boolean {
  if (b.length < offset + sig.length) return false;
  for (let i = 0; i < sig.length; i++) if (b[offset + i] !== sig[i]) return false;
  return true;
}

// Signatures built once: a literal or a spread array here would be a fresh allocation per call,
// and a first read of every extensionless or octet-stream object sniffs.
const sig = (s: string | number[]): Uint8Array => (typeof s === 'string' ? Buffer.from(s, 'latin1') : Uint8Array.from(s));
const PNG = sig([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const JPEG = sig([0xff, 0xd8, 0xff]);
const GIF87 = sig('GIF87a');
const GIF89 = sig('GIF89a');
const RIFF = sig('RIFF');
const WEBP = sig('WEBP');
const WAVE = sig('WAVE');
const PDF = sig('%PDF-');
const ZIP = sig([0x50, 0x4b, 0x03, 0x04]);
const ZIP_EMPTY = sig([0x50, 0x4b, 0x05, 0x06]);
const GZIP = sig([0x1f, 0x8b]);
const FTYP = sig('ftyp');
const EBML = sig([0x1a, 0x45, 0xdf, 0xa3]);
const OGG = sig('OggS');
const ID3 = sig('ID3');
const MP3 = sig([0xff, 0xfb]);
const FLAC = sig('fLaC');
const WOFF2 = sig('wOF2');
const WOFF = sig('wOFF');
const ZSTD = sig([0x28, 0xb5, 0x2f, 0xfd]);

/** The type recognised from leading bytes, if any. */
export function typeFromMagic(head: Buffer): string | undefined {
  if (startsWith(head, PNG)) return 'image/png';
  if (startsWith(head, JPEG)) return 'image/jpeg';
  if (startsWith(head, GIF87) || startsWith(head, GIF89)) return 'image/gif';
  if (startsWith(head, RIFF) && startsWith(head, WEBP, 8)) return 'image/webp';
  if (startsWith(head, RIFF) && startsWith(head, WAVE, 8)) return 'audio/wav';
  if (startsWith(head, PDF)) return 'application/pdf';
  if (startsWith(head, ZIP) || startsWith(head, ZIP_EMPTY)) return 'application/zip';
  if (startsWith(head, GZIP)) return 'application/gzip';
  // ISO BMFF: a box size, then 'ftyp'; the brand says MP4, QuickTime, AVIF or HEIC.
  if (startsWith(head, FTYP, 4)) {
    const brand = head.subarray(8, 12).toString('latin1');
    if (brand === 'avif' || brand === 'avis') return 'image/avif';
    if (brand === 'heic' || brand === 'heix' || brand === 'mif1') return 'image/heic';
    if (brand === 'qt  ') return 'video/quicktime';
    if (brand.startsWith('M4A')) return 'audio/mp4';
    return 'video/mp4';
  }
  // EBML header: WebM or Matroska, told apart by the DocType.
  if (startsWith(head, EBML)) {
    return head.includes('webm', 0, 'latin1') ? 'video/webm' : 'video/x-matroska';
  }
  if (startsWith(head, OGG)) return 'audio/ogg';
  if (startsWith(head, ID3) || startsWith(head, MP3)) return 'audio/mpeg';
  if (startsWith(head, FLAC)) return 'audio/flac';
  if (startsWith(head, WOFF2)) return 'font/woff2';
  if (startsWith(head, WOFF)) return 'font/woff';
  if (startsWith(head, ZSTD)) return 'application/zstd';
  return undefined;
}

/** Whether the store's type is specific enough to serve as is. */
export function isSpecificType(storeType: string | undefined): storeType is string {
  if (storeType === undefined) return false;
  // The common spellings match as they are; anything else is normalised first.
  if (GENERIC_TYPES.has(storeType)) return false;
  return !GENERIC_TYPES.has(storeType.split(';')[0]!.trim().toLowerCase());
}

/**
 * Resolve the type to serve. `head` is the object's first bytes when available; when it is
 * `undefined` and neither the store nor the extension decides, the caller should fetch
 * `SNIFF_BYTES` and call again (see `needsSniff`).
 */
export function resolveContentType(key: string, storeType: string | undefined, head?: Buffer): string {
  if (isSpecificType(storeType)) return storeType;
  return typeFromExtension(key) ?? (head ? typeFromMagic(head) : undefined) ?? OCTET_STREAM;
}

/** Whether resolving the type needs the object's first bytes. */
export function needsSniff(key: string, storeType: string | undefined): boolean {
  return !isSpecificType(storeType) && typeFromExtension(key) === undefined;
}

/**
 * Whether an object's type is sniffed from its first bytes: when the store and the key leave it
 * open, and only for an object of one slice. Every first read of such an object covers its first
 * bytes, whatever range came first; a larger object's first read may start anywhere, and
 * fetching its first slice as well would cost a cold seek a second store GET. So a sliced
 * object's type is the store's or its key's (else octet-stream), the same whichever range is
 * read first, and for a PUT as for a read.
 */
export function sniffsType(key: string, storeType: string | undefined, size: number, sliceBytes: number): boolean {
  return size > 0 && size <= sliceBytes && needsSniff(key, storeType);
}
