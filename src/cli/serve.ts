/**
 * `cachegate [serve] [--config PATH|env]... [PATH]...`: load the config and run the gateway until
 * SIGTERM or SIGINT.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { loadConfig, parseListen, type ConfigSource } from '../config/load.js';
import { GatewayError } from '../errors.js';
import { createGateway } from '../gateway.js';
import type { Logger } from '../metrics/log.js';

const SAMPLE_KEY = 'hello.txt';
const SAMPLE_BODY = 'Hello from cachegate!\n';

export interface ServeDeps {
  log: Logger;
  /** Human-readable output (a TTY): the embedded default's hints are plain lines. */
  pretty: boolean;
  /** Set here once the gateway exists: a crash is reported to Sentry (when configured). */
  crash: { report(err: Error): Promise<void> };
}

/** Run the gateway; resolves when it has stopped. */
export async function runServe(source: ConfigSource, listenOverride: string | undefined, deps: ServeDeps): Promise<number> {
  const { log } = deps;
  const loaded = await loadConfig(source);
  const { config } = loaded;
  if (listenOverride !== undefined) config.listen = listenOverride;
  let listenAt: { host: string; port: number };
  try {
    listenAt = parseListen(config.listen);
  } catch (err) {
    throw new GatewayError('GW_ERR_CONFIG', `--listen: ${(err as Error).message}`);
  }
  const { host, port } = listenAt;
  const gateway = createGateway(config, { log });

  if (source.kind === 'default') await writeSampleObject(config.stores.local);

  deps.crash.report = async (err) => {
    gateway.errors.capture(err, { code: 'GW_ERR_INTERNAL' });
    await gateway.errors.flush();
  };

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
    await gateway.close();
    throw new Error(`cannot listen on ${config.listen}: ${e.code === 'EADDRINUSE' ? 'address already in use' : e.message}`, { cause: err });
  }
  log.info({ listen: url, stores: Object.keys(config.stores) }, 'cachegate listening');

  if (source.kind === 'default' && loaded.generatedBearerToken) {
    const local = config.stores.local;
    const root = local?.type === 'fs' ? local.root : './data';
    const curl = `curl -H 'Authorization: Bearer ${loaded.generatedBearerToken}' ${url}/local/${SAMPLE_KEY}`;
    if (deps.pretty) {
      console.log(`cachegate: embedded default config: fs store 'local' on ${root}, listening on ${url}`);
      console.log(`cachegate: bearer token for this run: ${loaded.generatedBearerToken}`);
      console.log(`cachegate: try it:`);
      console.log(curl);
    } else {
      // JSON mode prints only JSON, and no token reaches a log line: the token goes to a file
      // only this user can read (outside the store's root, so it is never served), and the
      // curl line reads it from there, working as printed.
      const tokenFile = path.resolve(TOKEN_FILE);
      await writeFile(tokenFile, `${loaded.generatedBearerToken}\n`, { mode: 0o600 });
      await chmod(tokenFile, 0o600); // an older file keeps its mode through writeFile
      const tryIt = `curl -H "Authorization: Bearer $(cat ${tokenFile})" ${url}/local/${SAMPLE_KEY}`;
      log.info({ root, listen: url, token_file: tokenFile, try: tryIt }, 'embedded default config: bearer token generated for this run');
    }
  }

  await stopped;
  await gateway.shutdown();
  log.info('stopped');
  return 0;
}

/** Where JSON mode leaves the embedded default's generated token (mode 0600, in the working directory). */
export const TOKEN_FILE = '.cachegate-token';

/** Give the embedded default something to fetch, without touching an existing file. */
async function writeSampleObject(store: { type: string; root?: string } | undefined): Promise<void> {
  if (store?.type !== 'fs' || !store.root) return;
  await mkdir(store.root, { recursive: true });
  await writeFile(path.join(store.root, SAMPLE_KEY), SAMPLE_BODY, { flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
}
