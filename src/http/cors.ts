/**
 * Per-store CORS (Fetch standard, "CORS protocol"): the headers of actual responses, errors
 * included, and the answer to preflights. Pure; the zod schema for `CorsConfig` lives in
 * config/schema.ts.
 *
 * Header names are lower case, like object-headers.ts, so spreading these records into the
 * object headers never yields two spellings of one header (`Vary` and `vary`).
 *
 * Decisions:
 * - An origin that is not allowed gets no Access-Control-* header, ever; `null` (sandboxed
 *   frames, file: pages) matches only a plain `*` and is never reflected.
 * - Caches: with a plain `*` (no credentials) the headers are the same for every request, so they
 *   are sent even without an Origin header and no Vary is needed. Otherwise the answer depends
 *   on Origin, so `Vary: Origin` is sent on every response, including ones without CORS headers:
 *   a shared cache must not hand a response made for no (or another) Origin to this one.
 * - `*` with allow_credentials reflects the request's origin (browsers refuse `*` with
 *   credentials). That lets any site read credentialed responses; the schema should refuse it.
 * - Preflights echo the requested header names once each has been checked, which also covers
 *   Authorization (never covered by a `*` in Access-Control-Allow-Headers).
 */

/** CORS settings of one store (validated by the config schema). */
export interface CorsConfig {
  /** Exact origins (`https://app.example.com`), `*`, or wildcard subdomains (`https://*.example.com`). */
  allowed_origins: string[];
  /** Methods a preflight may ask for; `*` allows any. Default DEFAULT_CORS_METHODS. */
  allowed_methods?: string[];
  /** Request headers a preflight may ask for (case-insensitive); `*` allows any. Default DEFAULT_CORS_HEADERS. */
  allowed_headers?: string[];
  /** Response headers scripts may read, on top of ALWAYS_EXPOSED. */
  expose_headers?: string[];
  /** How long a browser may cache a preflight answer, in seconds. */
  max_age?: number;
  /** Send Access-Control-Allow-Credentials: true. */
  allow_credentials?: boolean;
}

/** Methods a preflight may ask for when `allowed_methods` is not set. */
export const DEFAULT_CORS_METHODS: readonly string[] = ['GET', 'HEAD', 'PUT'];

/** Request headers a preflight may ask for when `allowed_headers` is not set. */
export const DEFAULT_CORS_HEADERS: readonly string[] = [
  'Authorization',
  'Range',
  'If-None-Match',
  'If-Modified-Since',
  'If-Match',
  'If-Unmodified-Since',
  'If-Range',
  'Content-Type',
];

/** Response headers always exposed to scripts (players need Content-Range, uploaders ETag). */
export const ALWAYS_EXPOSED: readonly string[] = [
  'Content-Range',
  'Content-Length',
  'ETag',
  'X-CG-Status',
  'Accept-Ranges',
  'Last-Modified',
  'Content-Type',
  'Content-Disposition',
];

/** The answer to a preflight: 204 with headers, or 403 with a one-line reason. */
export type PreflightResult = { status: 204; headers: Record<string, string> } | { status: 403; reason: string };

/** The CORS request headers of an OPTIONS request, as received. */
export interface PreflightRequest {
  origin: string | undefined;
  requestMethod: string | undefined;
  /** The raw Access-Control-Request-Headers value (comma-separated). */
  requestHeaders?: string | undefined;
}

// RFC 9110 §5.6.2: token = 1*tchar. Header and method names are tokens; anything else is refused,
// so no configured or requested value can put a CR/LF into a response header.
const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// RFC 6454 §7: serialized origin = scheme "://" host [ ":" port ].
// Hosts are limited to what browsers serialize (punycode, IPv6 literals), so a matched origin
// is safe to reflect into a header as received.
const ORIGIN_RE = /^([a-z][a-z0-9+.-]*):\/\/(\[[0-9a-f:.]+\]|[a-z0-9._~-]+)(?::(\d{1,5}))?$/i;
const DEFAULT_PORTS: Readonly<Record<string, string>> = { http: '80', https: '443', ws: '80', wss: '443' };
const HOST_LABELS_RE = /^[a-z0-9-]+(\.[a-z0-9-]+)*$/;

interface ParsedOrigin {
  scheme: string;
  host: string;
  /** Empty for the scheme's default port. */
  port: string;
}

/** Compiled form of a CorsConfig, cached per config object. */
interface CompiledCors {
  anyOrigin: boolean;
  exact: Set<string>;
  wildcards: { scheme: string; suffix: string; port: string }[];
  credentials: boolean;
  /** Headers are identical for every request (plain `*`, no credentials). */
  constant: boolean;
  anyMethod: boolean;
  methods: string[];
  anyHeader: boolean;
  headers: Set<string>;
  expose: string;
  maxAgeSec: number | undefined;
}

const compiled = new WeakMap<CorsConfig, CompiledCors>();

function parseOrigin(value: string): ParsedOrigin | undefined {
  const m = ORIGIN_RE.exec(value);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  const port = m[3] === undefined || m[3] === DEFAULT_PORTS[scheme] ? '' : String(Number(m[3]));
  return { scheme, host: m[2]!.toLowerCase(), port };
}

function originKey(o: ParsedOrigin): string {
  return `${o.scheme}://${o.host}${o.port === '' ? '' : `:${o.port}`}`;
}

function tokens(list: readonly string[]): string[] {
  return list.map((s) => s.trim()).filter((s) => TOKEN_RE.test(s));
}

function compile(config: CorsConfig): CompiledCors {
  const cached = compiled.get(config);
  if (cached) return cached;
  const anyOrigin = config.allowed_origins.includes('*');
  const exact = new Set<string>();
  const wildcards: CompiledCors['wildcards'] = [];
  for (const entry of config.allowed_origins) {
    // `https://*.example.com`: only a whole leftmost label may be a wildcard.
    const wild = /^([a-z][a-z0-9+.-]*):\/\/\*\.(.+)$/i.exec(entry.trim());
    // A trailing slash in the config is forgiven; browsers never send one.
    const parsed = parseOrigin((wild ? `${wild[1]}://${wild[2]}` : entry).trim().replace(/\/$/, ''));
    if (!parsed) continue;
    if (wild) {
      if (HOST_LABELS_RE.test(parsed.host)) wildcards.push({ scheme: parsed.scheme, suffix: `.${parsed.host}`, port: parsed.port });
    } else {
      exact.add(originKey(parsed));
    }
  }
  const credentials = config.allow_credentials === true;
  const methods = tokens(config.allowed_methods ?? DEFAULT_CORS_METHODS).map((m) => m.toUpperCase());
  const headers = tokens(config.allowed_headers ?? DEFAULT_CORS_HEADERS).map((h) => h.toLowerCase());
  const expose = new Map<string, string>();
  for (const h of tokens([...ALWAYS_EXPOSED, ...(config.expose_headers ?? [])])) {
    if (!expose.has(h.toLowerCase())) expose.set(h.toLowerCase(), h);
  }
  const maxAge = config.max_age;
  const result: CompiledCors = {
    anyOrigin,
    exact,
    wildcards,
    credentials,
    constant: anyOrigin && !credentials,
    anyMethod: methods.includes('*'),
    methods: methods.filter((m) => m !== '*'),
    anyHeader: headers.includes('*'),
    headers: new Set(headers),
    expose: [...expose.values()].join(', '),
    maxAgeSec: maxAge !== undefined && Number.isFinite(maxAge) && maxAge >= 0 ? Math.floor(maxAge) : undefined,
  };
  compiled.set(config, result);
  return result;
}

/**
 * The Access-Control-Allow-Origin value for `origin`, or undefined when it is not allowed.
 * An allowed origin is reflected exactly as received: browsers compare it byte for byte.
 */
function allowedOrigin(cors: CompiledCors, origin: string): string | undefined {
  if (cors.constant) return '*';
  const received = origin.trim();
  const parsed = parseOrigin(received);
  // `null` and malformed origins never match, so they are never reflected.
  if (!parsed) return undefined;
  if (cors.anyOrigin || cors.exact.has(originKey(parsed))) return received;
  for (const w of cors.wildcards) {
    if (w.scheme !== parsed.scheme || w.port !== parsed.port || !parsed.host.endsWith(w.suffix)) continue;
    const sub = parsed.host.slice(0, -w.suffix.length);
    if (sub !== '' && HOST_LABELS_RE.test(sub)) return received;
  }
  return undefined;
}

/**
 * The CORS headers of an actual response (errors included): `{}` without a config.
 * With a plain `*` config: Access-Control-Allow-Origin `*` and the exposed headers, always.
 * Otherwise `vary: Origin` always, plus, for an allowed Origin, Access-Control-Allow-Origin
 * (the serialized origin), Access-Control-Expose-Headers and, when configured,
 * Access-Control-Allow-Credentials.
 */
export function corsHeaders(config: CorsConfig | undefined, origin: string | undefined): Record<string, string> {
  if (config === undefined) return {};
  const cors = compile(config);
  if (cors.constant) {
    return { 'access-control-allow-origin': '*', 'access-control-expose-headers': cors.expose };
  }
  const allowed = origin === undefined ? undefined : allowedOrigin(cors, origin);
  if (allowed === undefined) return { vary: 'Origin' };
  const headers: Record<string, string> = {
    'access-control-allow-origin': allowed,
    'access-control-expose-headers': cors.expose,
    vary: 'Origin',
  };
  if (cors.credentials) headers['access-control-allow-credentials'] = 'true';
  return headers;
}

/**
 * Answer a CORS preflight: an OPTIONS request with Origin and Access-Control-Request-Method.
 * Returns undefined when the request is not a preflight (the route treats it as plain OPTIONS),
 * 403 when the store has no CORS config or the origin, method or any requested header is not
 * allowed, else 204 with Access-Control-Allow-{Origin,Methods,Headers}, Max-Age and
 * Credentials as configured.
 */
export function preflight(config: CorsConfig | undefined, req: PreflightRequest): PreflightResult | undefined {
  if (req.origin === undefined || req.requestMethod === undefined) return undefined;
  if (config === undefined) return { status: 403, reason: 'CORS is not enabled for this store' };
  const cors = compile(config);
  const origin = allowedOrigin(cors, req.origin);
  if (origin === undefined) return { status: 403, reason: 'origin not allowed' };

  const method = req.requestMethod.trim();
  if (!TOKEN_RE.test(method)) return { status: 403, reason: 'invalid Access-Control-Request-Method' };
  if (!cors.anyMethod && !cors.methods.includes(method)) return { status: 403, reason: `method ${method} not allowed` };

  const requested: string[] = [];
  for (const raw of (req.requestHeaders ?? '').split(',')) {
    const name = raw.trim().toLowerCase();
    if (name === '') continue;
    if (!TOKEN_RE.test(name)) return { status: 403, reason: 'invalid Access-Control-Request-Headers' };
    if (!cors.anyHeader && !cors.headers.has(name)) return { status: 403, reason: `request header ${name} not allowed` };
    if (!requested.includes(name)) requested.push(name);
  }

  const headers: Record<string, string> = {
    'access-control-allow-origin': origin,
    'access-control-allow-methods': cors.anyMethod ? method : cors.methods.join(', '),
    vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
  };
  if (requested.length > 0) headers['access-control-allow-headers'] = requested.join(', ');
  if (cors.maxAgeSec !== undefined) headers['access-control-max-age'] = String(cors.maxAgeSec);
  if (cors.credentials) headers['access-control-allow-credentials'] = 'true';
  return { status: 204, headers };
}
