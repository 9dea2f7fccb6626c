import { describe, expect, it } from 'vitest';

import { contentDisposition, MAX_CONTENT_TYPE_CHARS, MAX_FILENAME_BYTES, safeContentType } from '../../src/http/content-disposition.js';
import { GatewayError } from '../../src/errors.js';

/** A header value Node would accept and that cannot split a header: printable ASCII, SP, HTAB. */
function isSafeHeaderValue(value: string): boolean {
  return /^[\t\x20-\x7e]*$/.test(value);
}

describe('contentDisposition', () => {
  it.each([
    ['inline', 'inline'],
    ['attachment', 'attachment'],
    ['ATTACHMENT', 'attachment'],
    ['  Inline  ', 'inline'],
    ['attachment; filename=a.pdf', `attachment; filename="a.pdf"; filename*=UTF-8''a.pdf`],
    ['attachment;filename=a.pdf', `attachment; filename="a.pdf"; filename*=UTF-8''a.pdf`],
    ['attachment ; filename = a.pdf ', `attachment; filename="a.pdf"; filename*=UTF-8''a.pdf`],
    ['inline; filename=photo.jpg', `inline; filename="photo.jpg"; filename*=UTF-8''photo.jpg`],
    ['attachment; FILENAME=a.pdf', `attachment; filename="a.pdf"; filename*=UTF-8''a.pdf`],
    // one pair of surrounding quotes is unwrapped
    ['attachment; filename="a.pdf"', `attachment; filename="a.pdf"; filename*=UTF-8''a.pdf`],
    // spaces and RFC 8187 attr-chars
    ['attachment; filename=my report.pdf', `attachment; filename="my report.pdf"; filename*=UTF-8''my%20report.pdf`],
    ["attachment; filename=a!#$&+-.^_`|~b", "attachment; filename=\"a!#$&+-.^_`|~b\"; filename*=UTF-8''a!#$&+-.^_`|~b"],
    ["attachment; filename=it's (1)*.txt", `attachment; filename="it's (1)*.txt"; filename*=UTF-8''it%27s%20%281%29%2A.txt`],
    ['attachment; filename=100%.txt', `attachment; filename="100%.txt"; filename*=UTF-8''100%25.txt`],
    // the name runs to the end: ';' and '=' are part of it
    ['attachment; filename=a;b=c.txt', `attachment; filename="a;b=c.txt"; filename*=UTF-8''a%3Bb%3Dc.txt`],
    // quotes and backslashes are escaped in the fallback, percent-encoded in filename*
    ['attachment; filename=say "hi".txt', `attachment; filename="say \\"hi\\".txt"; filename*=UTF-8''say%20%22hi%22.txt`],
    ['attachment; filename=a\\b.txt', `attachment; filename="a\\\\b.txt"; filename*=UTF-8''a%5Cb.txt`],
    ['attachment; filename="a"b".txt"', `attachment; filename="\\"a\\"b\\".txt\\""; filename*=UTF-8''%22a%22b%22.txt%22`],
    // Unicode: one '_' per code point in the fallback, UTF-8 percent-encoded in filename*
    [
      'attachment; filename=résumé 日本.pdf',
      `attachment; filename="r_sum_ __.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%E6%97%A5%E6%9C%AC.pdf`,
    ],
    ['attachment; filename=😀.png', `attachment; filename="_.png"; filename*=UTF-8''%F0%9F%98%80.png`],
    // CR/LF/NUL and other controls are stripped, never escaped into the header
    ['attachment; filename=a.txt\r\nSet-Cookie: x=1', `attachment; filename="a.txtSet-Cookie: x=1"; filename*=UTF-8''a.txtSet-Cookie%3A%20x%3D1`],
    ['attachment; filename=a\u0000b\u0007c\u007fd\u0085e\tf.txt', `attachment; filename="abcdef.txt"; filename*=UTF-8''abcdef.txt`],
    // bidi overrides that disguise extensions are stripped
    ['attachment; filename=invoice\u202Efdp.exe', `attachment; filename="invoicefdp.exe"; filename*=UTF-8''invoicefdp.exe`],
    // a name made only of controls leaves the bare type
    ['attachment; filename=\u0000\u0007', 'attachment'],
  ])('%j → %s', (input, expected) => {
    const out = contentDisposition(input);
    expect(out).toBe(expected);
    expect(isSafeHeaderValue(out)).toBe(true);
  });

  it.each([
    ['', 'invalid content disposition'],
    ['form-data', 'unknown content disposition type'],
    ['attachmentx', 'unknown content disposition type'],
    ['bogus; filename=a.pdf', 'unknown content disposition type'],
    ['attachment;', 'invalid content disposition'],
    ['attachment; name=a.pdf', 'invalid content disposition'],
    ["attachment; filename*=UTF-8''a.pdf", 'invalid content disposition'],
    ['attachment; filename=', 'empty filename in content disposition'],
    ['attachment; filename=""', 'empty filename in content disposition'],
    ['attach\r\nment', 'invalid content disposition'],
    [`attachment; filename=${'é'.repeat(MAX_FILENAME_BYTES / 2 + 1)}`, 'filename too long'],
  ])('rejects %j (400)', (input, message) => {
    let caught: unknown;
    try {
      contentDisposition(input);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(GatewayError);
    expect((caught as GatewayError).code).toBe('GW_ERR_BAD_REQUEST');
    expect((caught as GatewayError).message).toBe(message);
  });

  it(`accepts a filename of exactly ${MAX_FILENAME_BYTES} UTF-8 bytes`, () => {
    const out = contentDisposition(`attachment; filename=${'é'.repeat(MAX_FILENAME_BYTES / 2)}`);
    expect(out.startsWith('attachment; filename="_')).toBe(true);
  });

  it('keeps every output header-safe for arbitrary input', () => {
    for (let code = 0; code < 0x3000; code += 7) {
      const out = contentDisposition(`attachment; filename=x${String.fromCharCode(code)}\uD800y`);
      expect(isSafeHeaderValue(out), JSON.stringify(out)).toBe(true);
    }
  });
});

describe('safeContentType', () => {
  it.each([
    ['text/plain', 'text/plain'],
    ['  text/plain  ', 'text/plain'],
    ['application/vnd.api+json', 'application/vnd.api+json'],
    ['text/plain; charset=utf-8', 'text/plain; charset=utf-8'],
    ['text/plain;charset=utf-8', 'text/plain;charset=utf-8'],
    ['text/plain ; charset=utf-8', 'text/plain ; charset=utf-8'],
    ['text/plain; charset="utf-8"', 'text/plain; charset="utf-8"'],
    ['multipart/form-data; boundary="a b;c"', 'multipart/form-data; boundary="a b;c"'],
    ['text/plain; a="q\\"x"', 'text/plain; a="q\\"x"'],
    ['video/mp4; codecs="avc1.42E01E, mp4a.40.2"', 'video/mp4; codecs="avc1.42E01E, mp4a.40.2"'],
    ['text/plain;', 'text/plain;'],
    ['text/plain; a=1; b=2', 'text/plain; a=1; b=2'],
    // invalid
    ['', undefined],
    ['text', undefined],
    ['text/', undefined],
    ['/plain', undefined],
    ['text/plain/x', undefined],
    ['text /plain', undefined],
    ['text/plain; charset', undefined],
    ['text/plain; charset=', undefined],
    ['text/plain; charset = utf-8', undefined],
    ['text/plain; a="unterminated', undefined],
    ['text/plain; a=b c', undefined],
    ['text/plain\r\nSet-Cookie: x=1', undefined],
    ['text/plain; a="x\r\ny"', undefined],
    ['text/plain\u0000', undefined],
    ['text/plain; a="é"', undefined],
    ['téxt/plain', undefined],
    [`text/${'a'.repeat(MAX_CONTENT_TYPE_CHARS)}`, undefined],
  ])('%j → %j', (input, expected) => {
    expect(safeContentType(input)).toBe(expected);
  });
});
