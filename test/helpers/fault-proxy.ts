/**
 * A fault-injection proxy for tests: an HTTP proxy on a free loopback port in front of a real
 * store server (s3rver, Azurite). By default it forwards every request unchanged; on command it
 * fails the next requests in a chosen way: an error status (500, 503, S3's SlowDown), a reset
 * connection, a stall, a body cut after N bytes, or added latency. It counts what it saw.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Fault =
  | { kind: 'status'; status: number; body?: string; /** Answer after this long (lets a herd gather). */ delayMs?: number }
  | { kind: 'slowdown' }
  | { kind: 'reset' }
  | { kind: 'stall' }
  | { kind: 'cut'; afterBytes: number }
  | { kind: 'latency'; ms: number };

export interface FaultRule {
  fault: Fault;
  /** Only requests with this method (e.g. 'GET'); all when unset. */
  method?: string;
  /** How many matching requests to fail; Infinity until cleared. */
  times: number;
}

export interface FaultProxy {
  /** `http://127.0.0.1:port`: give this to the store as its endpoint. */
  url: string;
  port: number;
  /** Requests seen, by method (what reached the proxy, failed or not). */
  seen: Record<string, number>;
  /** Stalled requests whose connection the client has not closed yet. */
  readonly stalledOpen: number;
  /** Fail the next `times` matching requests with `fault` (rules apply in the order added). */
  inject(fault: Fault, times?: number, method?: string): void;
  /** Forward everything again. */
  clear(): void;
  close(): Promise<void>;
}

const SLOWDOWN_XML =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';

/** Start a proxy to `target` (`http://host:port`). */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const t = new URL(target);
  const rules: FaultRule[] = [];
  const seen: Record<string, number> = {};
  const sockets = new Set<Socket>();
  const stalled = new Set<ServerResponse>();

  const forward = (req: IncomingMessage, res: ServerResponse, latencyMs: number, cutAfter?: number) => {
    const up = http.request(
      { host: t.hostname, port: Number(t.port), method: req.method, path: req.url, headers: req.headers, agent: false },
      (upRes) => {
        const send = () => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          if (cutAfter === undefined) {
            upRes.pipe(res);
            return;
          }
          // The headers go out first, so the client has its answer before the body is cut.
          res.flushHeaders();
          upRes.pause();
          setTimeout(() => upRes.resume(), 50);
          let sent = 0;
          upRes.on('data', (chunk: Buffer) => {
            const room = cutAfter - sent;
            if (room > 0) res.write(chunk.subarray(0, room));
            sent += chunk.length;
            if (sent >= cutAfter) {
              upRes.destroy();
              res.socket?.destroy();
            }
          });
          upRes.on('end', () => res.end());
        };
        if (latencyMs > 0) setTimeout(send, latencyMs);
        else send();
      },
    );
    up.on('error', () => res.socket?.destroy());
    req.pipe(up);
  };

  const server = http.createServer((req, res) => {
    const method = req.method ?? '';
    seen[method] = (seen[method] ?? 0) + 1;
    const i = rules.findIndex((r) => r.times > 0 && (r.method === undefined || r.method === method));
    const rule = i === -1 ? undefined : rules[i]!;
    if (rule) {
      rule.times--;
      if (rule.times <= 0) rules.splice(i, 1);
    }
    const fault = rule?.fault;
    switch (fault?.kind) {
      case undefined:
        return forward(req, res, 0);
      case 'latency':
        return forward(req, res, fault.ms);
      case 'cut':
        return forward(req, res, 0, fault.afterBytes);
      case 'status': {
        req.resume();
        const answer = () => {
          res.writeHead(fault.status, { 'content-type': 'application/xml' });
          res.end(fault.body ?? `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code><Message>injected ${fault.status}</Message></Error>`);
        };
        if (fault.delayMs) setTimeout(answer, fault.delayMs);
        else answer();
        return;
      }
      case 'slowdown':
        req.resume();
        res.writeHead(503, { 'content-type': 'application/xml' });
        return res.end(SLOWDOWN_XML);
      case 'reset':
        req.resume();
        return req.socket.resetAndDestroy();
      case 'stall':
        req.resume();
        stalled.add(res);
        res.on('close', () => stalled.delete(res));
        return;
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    seen,
    get stalledOpen() {
      return stalled.size;
    },
    inject(fault, times = Infinity, method) {
      rules.push({ fault, times, ...(method ? { method } : {}) });
    },
    clear() {
      rules.length = 0;
      for (const r of stalled) r.socket?.destroy();
      stalled.clear();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
