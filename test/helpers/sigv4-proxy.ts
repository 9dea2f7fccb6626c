/**
 * A proxy in front of s3rver that checks SigV4 signatures, which s3rver itself does not (it
 * checks only the access key id of a SigV4 request). Every request's signature is recomputed
 * with the SDK's own signer (`@smithy/signature-v4`) from what arrived on the wire, against
 * s3rver's secret; a mismatch is refused with 403 SignatureDoesNotMatch, as S3 does, and the
 * rest are forwarded unchanged.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { S3rverInstance } from './s3rver.js';

const AUTH_RE = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/;

export interface SigV4CheckingProxy {
  /** Base URL to use as the store's endpoint. */
  endpoint: string;
  /** Requests whose signature held, and requests refused. */
  seen: { verified: number; refused: number };
  stop(): Promise<void>;
}

/** `20261203T153907Z` as a Date. */
function amzDate(v: string): Date {
  return new Date(`${v.slice(0, 4)}-${v.slice(4, 6)}-${v.slice(6, 8)}T${v.slice(9, 11)}:${v.slice(11, 13)}:${v.slice(13, 15)}Z`);
}

/** The headers the SDK's signer gives a body-less S3 request with these headers, at `at`. */
export async function sdkSignedHeaders(
  req: { method: string; path: string; headers: Record<string, string> },
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string | undefined },
  region: string,
  at: Date,
): Promise<Record<string, string>> {
  const signer = new SignatureV4({ service: 's3', region, credentials, sha256: Hash.bind(null, 'sha256'), uriEscapePath: false, applyChecksum: false });
  const [hostname, port] = req.headers.host!.split(':');
  const signed = await signer.sign(
    { protocol: 'http:', hostname: hostname!, ...(port ? { port: Number(port) } : {}), method: req.method, path: req.path, query: {}, headers: { ...req.headers } },
    { signingDate: at },
  );
  return signed.headers as Record<string, string>;
}

/** Whether a request as received is signed right for `secret`, by the SDK's signer. */
async function signatureHolds(req: http.IncomingMessage, secret: string): Promise<boolean> {
  const m = AUTH_RE.exec(String(req.headers.authorization ?? ''));
  const date = req.headers['x-amz-date'];
  if (!m || typeof date !== 'string') return false;
  const [, accessKeyId, , region, signedHeaders] = m;
  const headers: Record<string, string> = {};
  for (const name of signedHeaders!.split(';')) {
    const v = req.headers[name];
    if (typeof v !== 'string') return false;
    headers[name] = v;
  }
  const signed = await sdkSignedHeaders({ method: req.method!, path: req.url!, headers }, { accessKeyId: accessKeyId!, secretAccessKey: secret }, region!, amzDate(date));
  return signed.authorization === req.headers.authorization;
}

/** Start a checking proxy on a free loopback port in front of `srv`. */
export async function startSigV4CheckingProxy(srv: Pick<S3rverInstance, 'endpoint' | 'secretAccessKey'>): Promise<SigV4CheckingProxy> {
  const upstream = new URL(srv.endpoint);
  const agent = new http.Agent({ keepAlive: true });
  const seen = { verified: 0, refused: 0 };
  const server = http.createServer((req, res) => {
    void signatureHolds(req, srv.secretAccessKey).then((ok) => {
      if (!ok) {
        seen.refused++;
        req.resume();
        res.writeHead(403, { 'content-type': 'application/xml' }).end('<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error>');
        return;
      }
      seen.verified++;
      const out = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent }, (up) => {
        res.writeHead(up.statusCode!, up.headers);
        up.pipe(res);
      });
      out.on('error', () => res.destroy());
      req.pipe(out);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    stop: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      agent.destroy();
    },
  };
}
