#!/usr/bin/env node
/**
 * The CLI entry: serve | config check | keygen | sign | verify | --version.
 */
import { createRequire } from 'node:module';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { GatewayError } from './errors.js';
import { runKeygen, runSign, runVerify } from './cli/keys.js';
import { layersFromArgs, SERVE_OPTIONS } from './cli/config-args.js';
import { readRuntimeEnv } from './config/load.js';
import { createLogger, routeProcessOutput } from './metrics/log.js';
import { keepTickShape } from './http/tick-shape.js';

const USAGE = `usage:
  cachegate [serve] [--config PATH|env]... [PATH]... [--listen HOST:PORT]
      run the gateway (no config: the embedded default); several configs merge in order (maps
      deep, lists replaced), and env may come last as an overlay; --listen overrides listen
  cachegate config check [--config PATH|env]... [PATH]...
      validate the merged config and print it resolved, secrets redacted (exit 2 on an error)
  cachegate --version
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

function version(): string {
  // dist/main.js and src/main.ts both sit one level below package.json.
  return (createRequire(import.meta.url)('../package.json') as { version: string }).version;
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  switch (first) {
    case '--version':
    case '-V':
    case 'version':
      console.log(`cachegate ${version()}`);
      return 0;
    case 'config': {
      const [sub, ...args] = rest;
      if (sub !== 'check') throw usageError(`unknown config command '${sub ?? ''}' (try: cachegate config check --config FILE)`);
      const layers = layersFromArgs(args);
      if (layers.length === 0) throw usageError('config check needs --config PATH|env or a file');
      const { runConfigCheck } = await import('./cli/config-check.js');
      return runConfigCheck(layers);
    }
    case 'keygen': {
      const { values } = parseCli({ args: rest, options: { out: { type: 'string', short: 'o' }, force: { type: 'boolean', short: 'f' } } });
      return runKeygen(values.out ?? 'auth.keys.yaml', values.force ?? false);
    }
    case 'sign': {
      const { values } = parseCli({
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
      const { values, positionals } = parseCli({
        args: rest,
        options: { config: { type: 'string', short: 'c' }, 'public-key': { type: 'string' } },
        allowPositionals: true,
      });
      if (positionals.length !== 1) throw usageError('verify needs exactly one URL');
      return runVerify(positionals[0]!, { config: values.config, publicKey: values['public-key'] });
    }
    default: {
      const args = first === 'serve' ? rest : argv;
      const { values } = parseArgs({ args, options: SERVE_OPTIONS, allowPositionals: true });
      if (values.help) {
        console.log(USAGE);
        return 0;
      }
      const layers = layersFromArgs(args);
      return serve(layers.length === 0 ? { kind: 'default' } : { kind: 'layers', layers }, values.listen);
    }
  }
}

/**
 * Run the gateway. The logger and the process-output routing come first, before the store SDKs
 * load (the AWS SDK warns about Node 20 when its client is made); in JSON mode a failure to start
 * is one JSON line too.
 */
async function serve(source: import('./config/load.js').ConfigSource, listen: string | undefined): Promise<number> {
  const runtime = readRuntimeEnv();
  const log = createLogger({ level: runtime.logLevel, pretty: runtime.prettyLogs });
  const crash = { report: async (_err: Error): Promise<void> => {} };
  routeProcessOutput(log, (err) => crash.report(err));
  // Before the store SDKs load (their start-up GCs): see http/tick-shape.ts. listen() calls it too.
  keepTickShape();
  try {
    // Imported here so keygen/sign/verify do not load the store SDKs (most of a second).
    const { runServe } = await import('./cli/serve.js');
    return await runServe(source, listen, { log, crash, pretty: runtime.prettyLogs });
  } catch (err) {
    if (runtime.prettyLogs) throw err;
    // On stderr, like the plain-text message it replaces: one JSON line.
    const e = err as { message?: string; code?: string };
    createLogger({ level: 'fatal', destination: process.stderr }).fatal({ code: e?.code }, `cachegate: ${e?.message ?? String(err)}`);
    return exitCodeOf(err);
  }
}

/** 2 for a config or usage mistake, 1 for anything else. */
function exitCodeOf(err: unknown): number {
  return err instanceof GatewayError && (err.code === 'GW_ERR_CONFIG' || err.code === 'GW_ERR_BAD_REQUEST') ? 2 : 1;
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
  exitAfterFlush(exitCodeOf(err));
});

/**
 * parseArgs, except that a string option's value may start with '-': a base64url key does one
 * time in 64, and parseArgs refuses `--public-key -AbC…` as ambiguous. Such a pair is read as
 * `--public-key=-AbC…`, unless the next word is itself one of the command's options.
 */
function parseCli<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  const flags = new Map<string, { name: string; takesValue: boolean }>();
  for (const [name, o] of Object.entries(config.options ?? {})) {
    flags.set(`--${name}`, { name, takesValue: o.type === 'string' });
    if (o.short) flags.set(`-${o.short}`, { name, takesValue: o.type === 'string' });
  }
  const args = config.args ?? [];
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const next = args[i + 1];
    const flag = flags.get(arg);
    if (flag?.takesValue && next !== undefined && next.startsWith('-') && next !== '--' && !flags.has(next.split('=')[0]!)) {
      out.push(`--${flag.name}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return parseArgs({ ...config, args: out } as T);
}

