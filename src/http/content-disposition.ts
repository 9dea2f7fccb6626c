/**
 * Response overrides carried by a signed link: Content-Disposition from the `rcd` claim
 * (RFC 6266, with RFC 8187 for non-ASCII filenames) and Content-Type from `rct`. Pure; the
 * route maps a thrown GatewayError (GW_ERR_BAD_REQUEST) to 400.
 *
 * `rcd` format: `inline`, `attachment`, or `<type>; filename=NAME`, where NAME is the raw
 * filename (unquoted, any Unicode) running to the end of the claim, so it may itself contain
 * `;` or `=`. A NAME wrapped in one pair of double quotes with no quote or backslash inside is
 * unwrapped, so the usual header spelling `filename="a.pdf"` works too. The type is
 * case-insensitive.
 *
 * Output: `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>`. Both
 * parameters are always sent: UAs that know RFC 8187 use filename*, the rest get the fallback.
 * Control characters (C0, DEL, C1) and bidi overrides (which can disguise `exe` as `pdf`) are
 * stripped from NAME, so nothing unescaped from the claim can reach a header.
 */
import { GatewayError } from '../errors.js';

/** Longest accepted filename, in UTF-8 bytes, before sanitising. */
export const MAX_FILENAME_BYTES = 1024;
/** Longest accepted `rct` media type, in characters. */
export const MAX_CONTENT_TYPE_CHARS = 256;

/** Disposition types we accept (RFC 6266 §4.2). */
export const DISPOSITION_TYPES: readonly string[] = ['inline', 'attachment'];

// RFC 6266 §4.1: disposition-type is a token; parameter names are case-insensitive.
const RCD_RE = /^([!#$%&'*+.^_`|~0-9a-z-]+)[ \t]*(?:;[ \t]*filename[ \t]*=(.*))?$/is;
// C0 controls, DEL, C1 controls, and the bidi embedding/override/isolate marks.
// eslint-disable-next-line no-control-regex
const STRIPPED_RE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
// RFC 8187 §3.2.1: attr-char = ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~".
const ATTR_CHAR_RE = /^[A-Za-z0-9!#$&+\-.^_`|~]$/;

function badRequest(message: string): GatewayError {
  return new GatewayError('GW_ERR_BAD_REQUEST', message);
}

// RFC 6266 §4.3 / RFC 9110 §5.6.4: quoted-string; `"` and `\` are escaped with a backslash.
// Anything outside printable ASCII becomes `_`, one per code point.
function asciiFallback(name: string): string {
  let out = '';
  for (const ch of name) {
    const code = ch.codePointAt(0)!;
    if (code < 0x20 || code > 0x7e) out += '_';
    else if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else out += ch;
  }
  return out;
}

// RFC 8187 §3.2.1: ext-value = charset "'" [ language ] "'" value-chars, each byte of the
// UTF-8 encoding either an attr-char or pct-encoded (upper-case hex).
function extValue(name: string): string {
  let out = "UTF-8''";
  for (const byte of new TextEncoder().encode(name)) {
    const ch = String.fromCharCode(byte);
    out += ATTR_CHAR_RE.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function unwrapQuotes(name: string): string {
  if (name.length >= 2 && name.startsWith('"') && name.endsWith('"')) {
    const inner = name.slice(1, -1);
    if (!inner.includes('"') && !inner.includes('\\')) return inner;
  }
  return name;
}

/**
 * The Content-Disposition header for an `rcd` claim (see the module comment for the format).
 * Throws GW_ERR_BAD_REQUEST for an unknown disposition type, another parameter, an empty or
 * overlong filename. A filename that is empty once control characters are stripped yields the
 * bare type.
 */
export function contentDisposition(value: string): string {
  const m = RCD_RE.exec(value.trim());
  if (!m) throw badRequest('invalid content disposition');
  const type = m[1]!.toLowerCase();
  if (!DISPOSITION_TYPES.includes(type)) throw badRequest('unknown content disposition type');
  if (m[2] === undefined) return type;

  const raw = unwrapQuotes(m[2].trim());
  if (raw === '') throw badRequest('empty filename in content disposition');
  if (new TextEncoder().encode(raw).length > MAX_FILENAME_BYTES) throw badRequest('filename too long');
  // Lone surrogates need nothing special: `_` in the fallback, U+FFFD in UTF-8.
  const name = raw.replace(STRIPPED_RE, '').trim();
  if (name === '') return type;
  return `${type}; filename="${asciiFallback(name)}"; filename*=${extValue(name)}`;
}

// RFC 9110 §8.3.1: media-type = type "/" subtype parameters;
// parameters = *( OWS ";" OWS [ parameter ] ); parameter = name "=" ( token / quoted-string ).
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
// Quoted-string without obs-text: only printable ASCII, tab and space, or quoted pairs.
const QUOTED_STRING = '"(?:[\\t \\x21\\x23-\\x5b\\x5d-\\x7e]|\\\\[\\t \\x21-\\x7e])*"';
const PARAMETER = `${TOKEN}=(?:${TOKEN}|${QUOTED_STRING})`;
const MEDIA_TYPE_RE = new RegExp(`^${TOKEN}/${TOKEN}(?:[ \\t]*;[ \\t]*(?:${PARAMETER})?)*$`);

/**
 * Validate an `rct` override: a syntactically valid media type (`type/subtype` with optional
 * `; name=value` parameters, value a token or quoted string), printable ASCII only and at most
 * MAX_CONTENT_TYPE_CHARS. Returns it trimmed, or undefined when invalid (the route answers 400
 * or ignores it).
 *
 * Only syntax is checked: a link may still say `text/html`. Whoever can sign links can already
 * choose what the gateway serves; a policy on types belongs to the signer or the store config.
 */
export function safeContentType(rct: string): string | undefined {
  const value = rct.trim();
  if (value === '' || value.length > MAX_CONTENT_TYPE_CHARS) return undefined;
  return MEDIA_TYPE_RE.test(value) ? value : undefined;
}
