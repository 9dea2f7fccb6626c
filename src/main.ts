#!/usr/bin/env node
/**
 * The CLI entry: serve | keygen | sign | verify.
 */
import { parseArgs } from 'node:util';
import { GatewayError } from './errors.js';
import { runKeygen, runSign, runVerify } from './cli/keys.js';

const USAGE = `usage:
  cachegate [serve] [--config PATH|env] [PATH] [--listen HOST:PORT]
      run the gateway (no config: the embedded default); --listen overrides the config's listen
  cachegate keygen [--out FILE] [--force]
      write a new Ed25519 keypair as YAML (auth: public_key, private_key), mode 0600
  cachegate sign --bucket B --path P [--method GET|HEAD|PUT] [--expires-in 1h] [--base-url URL]
                 (--config FILE [--kid ID] | --key PRIVATE_KEY)
      print a ready signed link
  cachegate verify URL (--config FILE | --public-key KEY)
      say whether a link is valid and, if not, exactly why (exit 1 when invalid)`;

function usageError(message: string): GatewayError {
  return new GatewayError('GW_ERR_BAD_REQUEST', `${message}\n${USAGE}`);
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  switch (first) {
    case 'keygen': {
      const { values } = parseArgs({ args: rest, options: { out: { type: 'string', short: 'o' }, force: { type: 'boolean', short: 'f' } } });
      return runKeygen(values.out ?? 'auth.keys.yaml', values.force ?? false);
    }
    case 'sign': {
      const { values } = parseArgs({
        args: rest,
        options: {
          bucket: { type: 'string', short: 'b' },
          path: { type: 'string', short: 'p' },
          method: { type: 'string', short: 'm', default: 'GET' },
          'expires-in': { type: 'string', short: 'e', default: '1h' },
          'base-url': { type: 'string' },
          config: { type: 'string', short: 'c' },
          key: { type: 'string', short: 'k' },
          kid: { type: 'string' },
        },
      });
      if (!values.bucket || !values.path) throw usageError('sign needs --bucket and --path');
      return runSign({
        bucket: values.bucket,
        path: values.path,
        method: values.method!,
        expiresIn: values['expires-in']!,
        baseUrl: values['base-url'],
        config: values.config,
        key: values.key,
        kid: values.kid,
      });
    }
    case 'verify': {
      const { values, positionals } = parseArgs({
        args: rest,
        options: { config: { type: 'string', short: 'c' }, 'public-key': { type: 'string' } },
        allowPositionals: true,
      });
      if (positionals.length !== 1) throw usageError('verify needs exactly one URL');
      return runVerify(positionals[0]!, { config: values.config, publicKey: values['public-key'] });
    }
    default: {
      const args = first === 'serve' ? rest : argv;
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
      if (positionals.length > 1) throw usageError(`unexpected arguments: ${positionals.slice(1).join(' ')}`);
      // Imported here so keygen/sign/verify do not load the store SDKs (most of a second).
      const { configSourceFromArgs, runServe } = await import('./cli/serve.js');
      return runServe(configSourceFromArgs(values.config, positionals[0]), values.listen);
    }
  }
}

/**
 * Exit once stdout and stderr have flushed: writes to a pipe are asynchronous, and an immediate
 * process.exit() can drop the last lines (a script reading `cachegate verify` would see nothing).
 */
function exitAfterFlush(code: number): void {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 2_000).unref();
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

main(process.argv.slice(2)).then(exitAfterFlush, (err: unknown) => {
  // One line (or the config's list of problems), never a stack trace.
  const e = err as { message?: string; code?: string };
  console.error(`cachegate: ${e?.message ?? String(err)}`);
  exitAfterFlush(err instanceof GatewayError ? (err.code === 'GW_ERR_CONFIG' || err.code === 'GW_ERR_BAD_REQUEST' ? 2 : 1) : 1);
});
