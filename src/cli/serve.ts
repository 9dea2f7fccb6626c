/**
 * `cachegate [serve] [--config PATH|env] [PATH]`: load the config and run the gateway until
 * SIGTERM or SIGINT.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { loadConfig, parseListen, readRuntimeEnv, type ConfigSource } from '../config/load.js';
import { createGateway } from '../gateway.js';
import { createLogger } from '../metrics/log.js';

const SAMPLE_KEY = 'hello.txt';
const SAMPLE_BODY = 'Hello from cachegate!\n';

/** Which config a `serve` invocation asked for. */
export function configSourceFromArgs(configFlag: string | undefined, positional: string | undefined): ConfigSource {
  const chosen = configFlag ?? positional;
  if (chosen === undefined) return { kind: 'default' };
  if (chosen === 'env') return { kind: 'env' };
  return { kind: 'file', path: chosen };
}

/** Run the gateway; resolves when it has stopped. */
export async function runServe(source: ConfigSource, listenOverride?: string): Promise<number> {
  const runtime = readRuntimeEnv();
  const log = createLogger({ level: runtime.logLevel, pretty: runtime.prettyLogs });
  const loaded = await loadConfig(source);
  const { config } = loaded;
  if (listenOverride !== undefined) config.listen = listenOverride;
  let listenAt: { host: string; port: number };
  try {
    listenAt = parseListen(config.listen);
  } catch (err) {
    console.error(`cachegate: --listen: ${(err as Error).message}`);
    return 2;
  }
  const { host, port } = listenAt;
  const gateway = createGateway(config, { log });

  if (source.kind === 'default') await writeSampleObject(config.stores.local);

  // A crash is reported (Sentry, when configured) and logged before the process exits.
  process.once('uncaughtException', (err) => {
    log.fatal({ err: err.message, stack: err.stack }, 'uncaught exception');
    gateway.errors.capture(err, { code: 'GW_ERR_INTERNAL' });
    void Promise.race([gateway.errors.flush(), new Promise((r) => setTimeout(r, 2_000))]).finally(() => process.exit(1));
  });

  // Handle signals from the start: a SIGTERM right after startup must still stop cleanly.
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      log.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });

  let url: string;
  try {
    ({ url } = await gateway.listen(host, port));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    console.error(`cachegate: cannot listen on ${config.listen}: ${e.code === 'EADDRINUSE' ? 'address already in use' : e.message}`);
    await gateway.close();
    return 1;
  }
  log.info({ listen: url, stores: Object.keys(config.stores) }, 'cachegate listening');

  if (source.kind === 'default' && loaded.generatedBearerToken) {
    const local = config.stores.local;
    const root = local?.type === 'fs' ? local.root : './data';
    console.log(`cachegate: embedded default config: fs store 'local' on ${root}, listening on ${url}`);
    console.log(`cachegate: bearer token for this run: ${loaded.generatedBearerToken}`);
    console.log(`cachegate: try it:`);
    console.log(`curl -H 'Authorization: Bearer ${loaded.generatedBearerToken}' ${url}/local/${SAMPLE_KEY}`);
  }

  await stopped;
  await gateway.shutdown();
  log.info('stopped');
  return 0;
}

/** Give the embedded default something to fetch, without touching an existing file. */
async function writeSampleObject(store: { type: string; root?: string } | undefined): Promise<void> {
  if (store?.type !== 'fs' || !store.root) return;
  await mkdir(store.root, { recursive: true });
  await writeFile(path.join(store.root, SAMPLE_KEY), SAMPLE_BODY, { flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
}
