import { describe, expect, it } from 'vitest';

import {
  OCTET_STREAM,
  SNIFF_BYTES,
  needsSniff,
  resolveContentType,
  typeFromExtension,
  typeFromMagic,
} from '../../src/core/content-type.js';

const ascii = (s: string) => Buffer.from(s, 'latin1');

/** Minimal real file headers, as the first bytes of each format. */
const HEADERS = {
  png: Buffer.from([
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, // signature
    0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, // IHDR chunk, length 13
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00,
  ]),
  jpeg: Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00]),
  gif87: Buffer.concat([ascii('GIF87a'), Buffer.from([0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00])]),
  gif89: Buffer.concat([ascii('GIF89a'), Buffer.from([0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00])]),
  // RIFF <size LE> WEBP VP8L
  webp: Buffer.concat([ascii('RIFF'), Buffer.from([0x1a, 0x00, 0x00, 0x00]), ascii('WEBPVP8L'), Buffer.from([0x0d, 0, 0, 0])]),
  pdf: ascii('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n'),
  // Local file header of a zip: PK\x03\x04, version 20, flags 0, method 8.
  zip: Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00]),
  emptyZip: Buffer.from([0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
  // gzip: magic, deflate, no flags, mtime, xfl, OS = unix.
  gzip: Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03]),
  // ISO BMFF ftyp box: size 32, 'ftyp', major brand 'isom', minor version 0x200, compatible brands.
  mp4: Buffer.concat([Buffer.from([0x00, 0x00, 0x00, 0x20]), ascii('ftypisom'), Buffer.from([0, 0, 2, 0]), ascii('isomiso2avc1mp41')]),
  // EBML header with DocType 'webm' (element 0x4282, size 0x84).
  webm: Buffer.from([
    0x1a, 0x45, 0xdf, 0xa3, 0x9f, // EBML, size 31
    0x42, 0x86, 0x81, 0x01, // EBMLVersion 1
    0x42, 0xf7, 0x81, 0x01, // EBMLReadVersion 1
    0x42, 0xf2, 0x81, 0x04, // EBMLMaxIDLength 4
    0x42, 0xf3, 0x81, 0x08, // EBMLMaxSizeLength 8
    0x42, 0x82, 0x84, 0x77, 0x65, 0x62, 0x6d, // DocType 'webm'
    0x42, 0x87, 0x81, 0x04, // DocTypeVersion 4
    0x42, 0x85, 0x81, 0x02, // DocTypeReadVersion 2
  ]),
  // Same header with DocType 'matroska'.
  mkv: Buffer.from([
    0x1a, 0x45, 0xdf, 0xa3, 0xa3,
    0x42, 0x86, 0x81, 0x01, 0x42, 0xf7, 0x81, 0x01, 0x42, 0xf2, 0x81, 0x04, 0x42, 0xf3, 0x81, 0x08,
    0x42, 0x82, 0x88, 0x6d, 0x61, 0x74, 0x72, 0x6f, 0x73, 0x6b, 0x61,
    0x42, 0x87, 0x81, 0x04, 0x42, 0x85, 0x81, 0x02,
  ]),
};

describe('resolveContentType', () => {
  it('uses a specific store type over the extension', () => {
    expect(resolveContentType('x.jpg', 'image/png')).toBe('image/png');
    expect(resolveContentType('x.jpg', 'text/plain; charset=utf-8')).toBe('text/plain; charset=utf-8');
  });

  it('uses a specific store type over magic bytes', () => {
    expect(resolveContentType('blob', 'video/mp4', HEADERS.png)).toBe('video/mp4');
  });

  it.each([OCTET_STREAM, 'binary/octet-stream', '', undefined, 'Application/Octet-Stream', 'application/octet-stream; charset=binary'])(
    'falls through the generic store type %j to the extension',
    (storeType) => {
      expect(resolveContentType('x.JPG', storeType)).toBe('image/jpeg');
      expect(resolveContentType('a/b.webm', storeType)).toBe('video/webm');
    },
  );

  it('uses the extension over magic bytes', () => {
    expect(resolveContentType('a/b.webm', undefined, HEADERS.png)).toBe('video/webm');
  });

  it.each<[string, Buffer, string]>([
    ['png', HEADERS.png, 'image/png'],
    ['jpeg', HEADERS.jpeg, 'image/jpeg'],
    ['gif87a', HEADERS.gif87, 'image/gif'],
    ['gif89a', HEADERS.gif89, 'image/gif'],
    ['webp', HEADERS.webp, 'image/webp'],
    ['pdf', HEADERS.pdf, 'application/pdf'],
    ['zip', HEADERS.zip, 'application/zip'],
    ['empty zip', HEADERS.emptyZip, 'application/zip'],
    ['gzip', HEADERS.gzip, 'application/gzip'],
    ['mp4 (ftyp isom)', HEADERS.mp4, 'video/mp4'],
    ['webm (EBML, DocType webm)', HEADERS.webm, 'video/webm'],
    ['matroska (EBML, DocType matroska)', HEADERS.mkv, 'video/x-matroska'],
  ])('sniffs %s from magic bytes when store type and extension do not decide', (_name, head, type) => {
    expect(resolveContentType('uploads/0f3a9c', OCTET_STREAM, head)).toBe(type);
    expect(resolveContentType('uploads/0f3a9c.unknownext', undefined, head)).toBe(type);
  });

  it('sniffs from the first SNIFF_BYTES of a longer body', () => {
    const body = Buffer.concat([HEADERS.png, Buffer.alloc(4096, 0xab)]);
    expect(resolveContentType('blob', undefined, body.subarray(0, SNIFF_BYTES))).toBe('image/png');
  });

  it('falls back to application/octet-stream', () => {
    expect(resolveContentType('blob', undefined)).toBe(OCTET_STREAM);
    expect(resolveContentType('blob', OCTET_STREAM, ascii('just some text'))).toBe(OCTET_STREAM);
    expect(resolveContentType('blob', '', Buffer.alloc(0))).toBe(OCTET_STREAM);
  });

  it('does not match a signature cut short', () => {
    expect(resolveContentType('blob', undefined, HEADERS.png.subarray(0, 4))).toBe(OCTET_STREAM);
    expect(resolveContentType('blob', undefined, ascii('RIFF'))).toBe(OCTET_STREAM);
  });

  it('does not take a dot in a folder name as an extension', () => {
    expect(resolveContentType('dir.jpg/file', undefined)).toBe(OCTET_STREAM);
    expect(resolveContentType('dir.jpg/file', undefined, HEADERS.gzip)).toBe('application/gzip');
  });

  it('does not treat a leading dot as an extension', () => {
    expect(resolveContentType('a/.png', undefined)).toBe(OCTET_STREAM);
  });
});

describe('typeFromExtension', () => {
  it.each([
    ['a.png', 'image/png'],
    ['a.JPEG', 'image/jpeg'],
    ['a/b/c.tar.gz', 'application/gzip'],
    ['index.html', 'text/html; charset=utf-8'],
    ['v.mp4', 'video/mp4'],
    ['doc.PDF', 'application/pdf'],
  ])('%s → %s', (key, type) => {
    expect(typeFromExtension(key)).toBe(type);
  });

  it.each(['noext', 'a.unknownext', 'trailingdot.', '.bashrc'])('%s has no known type', (key) => {
    expect(typeFromExtension(key)).toBeUndefined();
  });
});

describe('typeFromMagic', () => {
  it('recognises nothing in empty or random-looking bytes', () => {
    expect(typeFromMagic(Buffer.alloc(0))).toBeUndefined();
    expect(typeFromMagic(ascii('hello world'))).toBeUndefined();
  });
});

describe('needsSniff', () => {
  it('is true only when the store type is generic and the extension unknown', () => {
    expect(needsSniff('blob', undefined)).toBe(true);
    expect(needsSniff('blob', OCTET_STREAM)).toBe(true);
    expect(needsSniff('blob', 'binary/octet-stream')).toBe(true);
    expect(needsSniff('blob', '')).toBe(true);
    expect(needsSniff('a.unknownext', OCTET_STREAM)).toBe(true);

    expect(needsSniff('blob', 'image/png')).toBe(false);
    expect(needsSniff('x.jpg', undefined)).toBe(false);
    expect(needsSniff('x.jpg', OCTET_STREAM)).toBe(false);
    expect(needsSniff('x.jpg', 'image/png')).toBe(false);
  });

  it('agrees with resolveContentType: when false, the head does not change the answer', () => {
    const cases: Array<[string, string | undefined]> = [
      ['blob', 'image/png'],
      ['x.jpg', undefined],
      ['x.jpg', OCTET_STREAM],
    ];
    for (const [key, storeType] of cases) {
      expect(needsSniff(key, storeType)).toBe(false);
      expect(resolveContentType(key, storeType, HEADERS.gzip)).toBe(resolveContentType(key, storeType));
    }
  });
});
