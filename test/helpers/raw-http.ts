/**
 * Raw HTTP/1.1 over a socket, for what fetch and node:http will not send: pipelined requests,
 * repeated headers, a PUT without a length, `OPTIONS *`, a missing Host, `Expect: 100-continue`.
 */
import net from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Connect, write `parts` in order (a function part runs once everything before it is written, and
 * may wait), then collect what the server sends until it closes the connection or is quiet for
 * `quietMs` (after at least one byte). Resolves with the raw bytes.
 */
export function rawExchange(
  url: string,
  parts: Array<string | Buffer | ((received: () => Buffer, socket: net.Socket) => Promise<void>)>,
  quietMs = 800,
): Promise<Buffer> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const received = () => Buffer.concat(chunks);
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(received());
    };
    const socket = net.connect(Number(u.port), u.hostname, async () => {
      try {
        for (const p of parts) {
          if (typeof p === 'function') await p(received, socket);
          else if (!socket.destroyed) socket.write(p);
        }
      } catch (err) {
        reject(err as Error);
      }
    });
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      clearTimeout(timer);
      timer = setTimeout(done, quietMs);
    });
    socket.on('end', done);
    socket.on('close', done);
    socket.on('error', () => done());
    // Nothing at all within 10 s: give up with what there is (an empty buffer).
    setTimeout(done, 10_000).unref();
  });
}

/** A part that closes the connection (the client leaves). */
export const leave = async (_received: () => Buffer, socket: net.Socket): Promise<void> => {
  socket.destroy();
};

/** Wait until the bytes received so far satisfy `check`. */
export async function until(received: () => Buffer, check: (b: Buffer) => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check(received())) {
    if (Date.now() > end) throw new Error(`timed out waiting; got: ${received().toString('latin1').slice(0, 200)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Split raw bytes into the HTTP responses they hold (Content-Length or chunked bodies; 1xx have none). */
export function parseResponses(raw: Buffer, headRequests = 0): RawResponse[] {
  const out: RawResponse[] = [];
  let pos = 0;
  let heads = headRequests;
  while (pos < raw.length) {
    const end = raw.indexOf('\r\n\r\n', pos);
    if (end === -1) break;
    const lines = raw.subarray(pos, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!)?.[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    pos = end + 4;
    let body: Buffer = Buffer.alloc(0);
    if (status >= 200 && status !== 204 && status !== 304) {
      if (heads > 0) {
        heads--;
      } else if (headers['content-length'] !== undefined) {
        const n = Number(headers['content-length']);
        body = raw.subarray(pos, pos + n);
        pos += n;
      } else if (headers['transfer-encoding'] === 'chunked') {
        const parts: Buffer[] = [];
        for (;;) {
          const lineEnd = raw.indexOf('\r\n', pos);
          const size = parseInt(raw.subarray(pos, lineEnd).toString('latin1'), 16);
          pos = lineEnd + 2;
          if (!size) {
            pos += 2;
            break;
          }
          parts.push(raw.subarray(pos, pos + size));
          pos += size + 2;
        }
        body = Buffer.concat(parts);
      } else {
        body = raw.subarray(pos);
        pos = raw.length;
      }
    }
    out.push({ status, headers, body });
  }
  return out;
}
