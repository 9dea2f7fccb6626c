/**
 * The one header builder for object responses, shared by the GET/HEAD route and the hit fast
 * path, so a header or rule added here reaches every response: the object's own headers,
 * Cache-Control for who is asking, a signed link's validated overrides (`rcd`, `rct`), and the
 * store's CORS headers. What depends only on the entry and who asks is built once and shared
 * read-only; a caller that adds headers copies it.
 */
import type { AuthResult } from '../auth/middleware.js';
import type { CachedMeta } from '../cache/types.js';
import { GatewayError } from '../errors.js';
import type { LinkClaims } from '../sign/index.js';
import { cacheControlFor } from './cache-control.js';
import { contentDisposition, safeContentType } from './content-disposition.js';
import { corsHeaders, type CorsConfig } from './cors.js';
import { objectHeaders } from './object-headers.js';

export type Headers = Record<string, string>;

/** Per-store HTTP options from the config. */
export interface StoreHttpOptions {
  cors?: CorsConfig | undefined;
  cacheControl?: string | undefined;
}

export interface ResponseHeaderBuilder {
  /**
   * The headers of a 200 for `meta`, read-only (copy before adding to them). Throws
   * GW_ERR_BAD_REQUEST when a link's `rct` is not a valid media type.
   */
  build(meta: CachedMeta, cache: 'hit' | 'miss', who: AuthResult, bucket: string, origin: string | undefined): Readonly<Headers>;
  /** Refuse a link whose overrides are invalid, before anything is fetched. */
  checkOverrides(who: AuthResult): void;
  /** The store's CORS headers for this Origin (every answer carries them, errors included). */
  cors(bucket: string, origin: string | undefined): Readonly<Headers>;
}

const NO_HEADERS: Readonly<Headers> = Object.freeze({});

/** RFC 9111 §5.1: a stale copy served (stale_if_error, stale_while_revalidate) says how old it is. */
export function ageHeader(staleAgeSec: number | undefined): Readonly<Headers> {
  return staleAgeSec === undefined ? NO_HEADERS : { age: String(staleAgeSec) };
}

interface LinkOverrides {
  contentDisposition?: string;
  contentType?: string;
}

/** Build the header builder for the configured stores. */
export function createResponseHeaders(storeOptions: ReadonlyMap<string, StoreHttpOptions>): ResponseHeaderBuilder {
  // Bearer headers depend only on the entry (and its bucket, which the entry belongs to). Only a
  // hit's are kept: an entry is served as a miss once, and every entry pays for what is kept.
  const bearer = new WeakMap<CachedMeta, Headers>();
  // A link's max-age counts down to its expiry, so its headers hold for one second; a popular
  // link reuses them within that second (claims objects live in the verified-token cache).
  const linkMemo = new WeakMap<LinkClaims, { sec: number; meta: CachedMeta; cache: 'hit' | 'miss'; headers: Headers }>();
  const overridesMemo = new WeakMap<LinkClaims, LinkOverrides | GatewayError>();

  const overridesOf = (claims: LinkClaims): LinkOverrides => {
    let o = overridesMemo.get(claims);
    if (o === undefined) {
      o = parseOverrides(claims);
      overridesMemo.set(claims, o);
    }
    if (o instanceof GatewayError) throw o;
    return o;
  };

  const base = (meta: CachedMeta, cache: 'hit' | 'miss', who: AuthResult, configured: string | undefined): Headers => {
    if (who.kind === 'bearer') {
      let h = cache === 'hit' ? bearer.get(meta) : undefined;
      if (!h) {
        h = objectHeaders(meta, cache);
        h['cache-control'] = cacheControlFor({ auth: 'bearer', nowSec: 0, configured });
        if (cache === 'hit') bearer.set(meta, h);
      }
      return h;
    }
    const claims = who.claims;
    const sec = Math.floor(Date.now() / 1000);
    const memo = linkMemo.get(claims);
    if (memo && memo.sec === sec && memo.meta === meta && memo.cache === cache) return memo.headers;
    const h = objectHeaders(meta, cache);
    h['cache-control'] = cacheControlFor({ auth: 'link', linkExpiresAtSec: claims.exp, nowSec: sec, configured });
    const o = overridesOf(claims);
    if (o.contentDisposition !== undefined) h['content-disposition'] = o.contentDisposition;
    if (o.contentType !== undefined) h['content-type'] = o.contentType;
    linkMemo.set(claims, { sec, meta, cache, headers: h });
    return h;
  };

  return {
    build(meta, cache, who, bucket, origin) {
      const opts = storeOptions.get(bucket);
      const h = base(meta, cache, who, opts?.cacheControl);
      // CORS depends on the request's Origin: only stores that configure it pay for a copy.
      return opts?.cors ? { ...h, ...corsHeaders(opts.cors, origin) } : h;
    },
    checkOverrides(who) {
      if (who.kind === 'link' && (who.claims.rcd !== undefined || who.claims.rct !== undefined)) overridesOf(who.claims);
    },
    cors(bucket, origin) {
      const config = storeOptions.get(bucket)?.cors;
      return config ? corsHeaders(config, origin) : NO_HEADERS;
    },
  };
}

function parseOverrides(claims: LinkClaims): LinkOverrides | GatewayError {
  const out: LinkOverrides = {};
  if (claims.rcd !== undefined) out.contentDisposition = contentDisposition(claims.rcd);
  if (claims.rct !== undefined) {
    const type = safeContentType(claims.rct);
    if (!type) return new GatewayError('GW_ERR_BAD_REQUEST', "the link's rct is not a valid media type");
    out.contentType = type;
  }
  return out;
}
