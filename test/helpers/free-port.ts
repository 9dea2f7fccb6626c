import { createServer } from 'node:net';

/**
 * Asks the OS for a currently unused TCP port on 127.0.0.1.
 *
 * The port is found by listening on port 0 and closing the listener again, so
 * there is an inherent (small) race: another process may grab the port before
 * the caller binds it. Prefer letting a server bind port 0 itself and reading
 * back the bound port whenever the server supports that.
 *
 * @param host Interface to probe; defaults to `127.0.0.1`.
 * @returns A port number that was free at the time of the call.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`freePort: unexpected server address ${String(address)}`));
        return;
      }
      const { port } = address;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}
