/**
 * SigV4 for the lean S3 read path: HEAD and GET with no query string and no payload
 * (`UNSIGNED-PAYLOAD`), with the few headers a read sends. It replaces `@smithy/signature-v4` on
 * that path only because of cost: that general signer took ~23 µs and ~15 KB of garbage per
 * request (a fifth of the allocation of a cold miss), since it copies and sorts the request's
 * headers, walks an exclusion list, and derives its signing-key cache key with an HMAC of the
 * credentials on every call. This one takes ~6 µs: the signed header set is fixed, and the
 * signing key is derived once per credentials object, day and region (AWS's documented
 * derivation; `test/unit/s3-read.test.ts` compares its signatures with smithy's signer, and
 * `test/integration/s3-signatures.test.ts` verifies them on the wire). The
 * canonical request is hashed with the one-shot `crypto.hash` (0.3 µs against createHash's 0.9).
 * Credentials still come from the caller's provider on every request, so the SDK's default
 * chain and its refresh apply unchanged.
 */
import { createHmac, hash } from 'node:crypto';

/** Credentials as the SDK resolves them. */
export interface SigV4Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
}

/** The headers of a read, besides the ones the signer adds. Names are lower case. */
export interface ReadSignable {
  method: 'GET' | 'HEAD';
  /** The path exactly as sent (S3 signs it as sent: already encoded once). */
  path: string;
  host: string;
  range?: string | undefined;
  ifMatch?: string | undefined;
  ifNoneMatch?: string | undefined;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';
const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';

/** SigV4's canonical header value: trimmed, runs of whitespace as one space. */
function canonicalValue(v: string): string {
  return /\s/.test(v) ? v.trim().replace(/\s+/g, ' ') : v;
}

/** Signs reads for one service and region. */
export class ReadSigner {
  readonly #service: string;
  readonly #region: string;
  // The signing key of the last credentials object seen, for one day. The SDK's providers hand
  // out the same object until they refresh, so identity is the test: no secret is compared.
  #keyCredentials: SigV4Credentials | undefined;
  #keyDay = '';
  #key: Buffer | undefined;
  #scope = '';
  // x-amz-date of the last second seen.
  #second = -1;
  #amzDate = '';

  constructor(service: string, region: string) {
    this.#service = service;
    this.#region = region;
  }

  /** The request's headers, signed: host, the read's own headers, x-amz-*, authorization. */
  sign(req: ReadSignable, credentials: SigV4Credentials): Record<string, string> {
    const amzDate = this.#dateNow();
    const day = amzDate.slice(0, 8);
    const key = this.#signingKey(credentials, day);
    // Canonical headers in name order: host, if-match, if-none-match, range, x-amz-*.
    const headers: Record<string, string> = { host: req.host };
    let canonical = `host:${canonicalValue(req.host)}\n`;
    let signed = 'host';
    if (req.ifMatch !== undefined) {
      headers['if-match'] = req.ifMatch;
      canonical += `if-match:${canonicalValue(req.ifMatch)}\n`;
      signed += ';if-match';
    }
    if (req.ifNoneMatch !== undefined) {
      headers['if-none-match'] = req.ifNoneMatch;
      canonical += `if-none-match:${canonicalValue(req.ifNoneMatch)}\n`;
      signed += ';if-none-match';
    }
    if (req.range !== undefined) {
      headers.range = req.range;
      canonical += `range:${req.range}\n`;
      signed += ';range';
    }
    headers['x-amz-content-sha256'] = UNSIGNED_PAYLOAD;
    headers['x-amz-date'] = amzDate;
    canonical += `x-amz-content-sha256:${UNSIGNED_PAYLOAD}\nx-amz-date:${amzDate}\n`;
    signed += ';x-amz-content-sha256;x-amz-date';
    if (credentials.sessionToken) {
      headers['x-amz-security-token'] = credentials.sessionToken;
      canonical += `x-amz-security-token:${canonicalValue(credentials.sessionToken)}\n`;
      signed += ';x-amz-security-token';
    }
    const request = `${req.method}\n${req.path}\n\n${canonical}\n${signed}\n${UNSIGNED_PAYLOAD}`;
    const toSign = `${ALGORITHM}\n${amzDate}\n${this.#scope}\n${hash('sha256', request, 'hex')}`;
    const signature = createHmac('sha256', key).update(toSign).digest('hex');
    headers.authorization = `${ALGORITHM} Credential=${credentials.accessKeyId}/${this.#scope}, SignedHeaders=${signed}, Signature=${signature}`;
    return headers;
  }

  /** `YYYYMMDDTHHMMSSZ` of now, formatted once per second. */
  #dateNow(): string {
    const ms = Date.now();
    const second = Math.floor(ms / 1000);
    if (second !== this.#second) {
      const iso = new Date(second * 1000).toISOString(); // 2026-12-03T15:39:07.000Z
      this.#amzDate = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
      this.#second = second;
    }
    return this.#amzDate;
  }

  /** kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, day), region), service), "aws4_request"). */
  #signingKey(credentials: SigV4Credentials, day: string): Buffer {
    if (this.#key && credentials === this.#keyCredentials && day === this.#keyDay) return this.#key;
    let key = createHmac('sha256', `AWS4${credentials.secretAccessKey}`).update(day).digest();
    for (const part of [this.#region, this.#service, 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
    this.#key = key;
    this.#keyCredentials = credentials;
    this.#keyDay = day;
    this.#scope = `${day}/${this.#region}/${this.#service}/aws4_request`;
    return key;
  }
}
