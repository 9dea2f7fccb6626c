#!/usr/bin/env node
/**
 * The CLI entry: `cachegate [serve] [--config PATH|env] [PATH]`.
 */
import { parseArgs } from 'node:util';
import { GatewayError } from './errors.js';
import { configSourceFromArgs, runServe } from './cli/serve.js';

const USAGE = `usage:
  cachegate [serve] [--config PATH|env] [PATH] [--listen HOST:PORT]
      run the gateway (no config: the embedded default); --listen overrides the config's listen
  cachegate --help`;

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  const command = first && !first.startsWith('-') && first === 'serve' ? 'serve' : undefined;
  const args = command ? rest : argv;
  const { values, positionals } = parseArgs({
    args,
    options: {
      config: { type: 'string', short: 'c' },
      listen: { type: 'string', short: 'l' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length > 1) throw new GatewayError('GW_ERR_BAD_REQUEST', `unexpected arguments: ${positionals.slice(1).join(' ')}\n${USAGE}`);
  return runServe(configSourceFromArgs(values.config, positionals[0]), values.listen);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    // One line (or the config's list of problems), never a stack trace.
    const msg = err instanceof GatewayError || (err instanceof Error && err.name === 'TypeError' && 'code' in err)
      ? err.message
      : `${(err as Error)?.message ?? String(err)}`;
    console.error(`cachegate: ${msg}`);
    process.exit(err instanceof GatewayError && err.code === 'GW_ERR_CONFIG' ? 2 : 1);
  },
);
