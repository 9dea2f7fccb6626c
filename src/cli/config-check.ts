/**
 * `cachegate config check [--config PATH|env]...`: validate the merged config exactly as `serve`
 * would (stores are built, nothing is contacted) and print it resolved, secrets redacted.
 */
import { stringify } from 'yaml';
import { loadConfig, type ConfigLayer } from '../config/load.js';
import { redactConfig } from '../config/redact.js';
import { GatewayError } from '../errors.js';
import { checkDsn } from '../metrics/sentry.js';
import { createStoreRegistry } from '../stores/registry.js';

/** Exit 0 and print the resolved config; a config error throws (exit 2 in main). */
export async function runConfigCheck(layers: ConfigLayer[]): Promise<number> {
  const { config } = await loadConfig({ kind: 'layers', layers });
  // Building the stores checks what only a driver knows (an S3 endpoint, an Azure account URL).
  const stores = createStoreRegistry(config.stores, { storeTimeoutMs: config.limits.store_timeout });
  await stores.closeAll();
  if (config.sentry?.dsn) {
    try {
      checkDsn(config.sentry.dsn);
    } catch (err) {
      throw new GatewayError('GW_ERR_CONFIG', `invalid config:\n  sentry.dsn: ${(err as Error).message}`);
    }
  }
  const from = layers.map((l) => (l.kind === 'env' ? 'env' : l.path)).join(', ');
  process.stdout.write(`# cachegate config check: valid (from ${from}); sizes in bytes, durations in ms\n${stringify(redactConfig(config))}`);
  return 0;
}
