/**
 * Config layers from the command line, in the order given: `--config a.yaml --config env b.yaml`
 * is a.yaml, then env, then b.yaml. `env` names the environment layer.
 */
import { parseArgs } from 'node:util';
import type { ConfigLayer } from '../config/load.js';

/** The `serve` and `config check` options; anything else is an error from parseArgs. */
export const SERVE_OPTIONS = {
  config: { type: 'string', short: 'c', multiple: true },
  listen: { type: 'string', short: 'l' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The layers named by `--config` flags and positional paths, in command-line order. */
export function layersFromArgs(args: string[]): ConfigLayer[] {
  const { tokens } = parseArgs({ args, options: SERVE_OPTIONS, allowPositionals: true, tokens: true });
  const layers: ConfigLayer[] = [];
  for (const t of tokens) {
    const value = t.kind === 'positional' ? t.value : t.kind === 'option' && t.name === 'config' ? t.value : undefined;
    if (value !== undefined) layers.push(value === 'env' ? { kind: 'env' } : { kind: 'file', path: value });
  }
  return layers;
}
