/**
 * A minimal HTTP/1.1 client on raw sockets, for the herd: node:http's client costs about half a
 * millisecond per response on one core, which for 100 simultaneous responses would hide the
 * server's own latency. Here the requests are prebuilt bytes written to already-open sockets in
 * one tight loop, and responses are parsed just enough (status, headers, Content-Length or
 * chunked body) to know when the last byte arrived.
 */
import { connect } from 'node:net';

const CRLF2 = Buffer.from('\r\n\r\n');

/** Build the bytes of a GET request. */
export function requestBytes(host, path, headers = {}) {
  const lines = [`GET ${path} HTTP/1.1`, `host: ${host}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', ''];
  return Buffer.from(lines.join('\r\n'));
}

/** A keep-alive connection that runs one request at a time. */
export class RawConnection {
  #socket;
  #pending;
  #buf = Buffer.alloc(0);
  #state;

  static open(host, port) {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port, noDelay: true });
      s.once('connect', () => resolve(new RawConnection(s)));
      s.once('error', reject);
    });
  }

  constructor(socket) {
    this.#socket = socket;
    socket.on('data', (d) => this.#onData(d));
    socket.on('error', (err) => this.#fail(err));
    socket.on('close', () => this.#fail(new Error('connection closed')));
  }

  /** Send prebuilt request bytes; resolves with {status, headers, bytes, ms} at the last body byte. */
  request(bytes) {
    return new Promise((resolve) => {
      this.#pending = { resolve, t0: performance.now() };
      this.#buf = Buffer.alloc(0);
      this.#state = undefined;
      this.#socket.write(bytes);
    });
  }

  close() {
    this.#socket.destroy();
  }

  #fail(err) {
    const p = this.#pending;
    if (!p) return;
    this.#pending = undefined;
    p.resolve({ status: 0, error: err.message, bytes: this.#state?.bytes ?? 0, ms: performance.now() - p.t0 });
  }

  #done() {
    const p = this.#pending;
    this.#pending = undefined;
    const st = this.#state;
    p.resolve({ status: st.status, headers: st.headers, bytes: st.bytes, ms: performance.now() - p.t0 });
  }

  #onData(d) {
    if (!this.#pending) return;
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, d]) : d;
    if (!this.#state) {
      const end = this.#buf.indexOf(CRLF2);
      if (end === -1) return;
      const head = this.#buf.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(head[0].split(' ')[1]);
      const headers = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      const chunked = /chunked/i.test(headers['transfer-encoding'] ?? '');
      this.#state = { status, headers, bytes: 0, chunked, remaining: chunked ? undefined : Number(headers['content-length'] ?? 0) };
      this.#buf = this.#buf.subarray(end + 4);
    }
    const st = this.#state;
    if (!st.chunked) {
      const n = Math.min(st.remaining, this.#buf.length);
      st.bytes += n;
      st.remaining -= n;
      this.#buf = this.#buf.subarray(n);
      if (st.remaining === 0) this.#done();
      return;
    }
    // Chunked: <hex size>\r\n<data>\r\n … 0\r\n\r\n (no trailers expected).
    for (;;) {
      if (st.chunkLeft === undefined) {
        const eol = this.#buf.indexOf('\r\n');
        if (eol === -1) return;
        const size = parseInt(this.#buf.subarray(0, eol).toString('latin1'), 16);
        if (size === 0) {
          if (this.#buf.length < eol + 4) return;
          this.#buf = this.#buf.subarray(eol + 4);
          this.#done();
          return;
        }
        st.chunkLeft = size;
        this.#buf = this.#buf.subarray(eol + 2);
      }
      const n = Math.min(st.chunkLeft, this.#buf.length);
      st.bytes += n;
      st.chunkLeft -= n;
      this.#buf = this.#buf.subarray(n);
      if (st.chunkLeft > 0) return;
      if (this.#buf.length < 2) return; // chunkLeft stays 0: wait for the CRLF after the data
      this.#buf = this.#buf.subarray(2);
      st.chunkLeft = undefined;
    }
  }
}
