/**
 * For the bench's own node:http servers run as children (raw-server.mjs, raw-proxy.mjs): listen
 * on a free loopback port, print {"port":…} when ready, and exit on SIGTERM/SIGINT or when stdin
 * closes (the bench died).
 */
export function serveChild(server, onStop = () => {}) {
  server.keepAliveTimeout = 60_000;
  const stop = () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
    onStop();
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
  server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
}
