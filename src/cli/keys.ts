/**
 * `cachegate keygen`, `cachegate sign` and `cachegate verify`: making keys, making links, and
 * saying exactly why a link is or is not valid.
 */
import { open } from 'node:fs/promises';
import { stringify } from 'yaml';
import { createKeyring, importPublicKey, type VerifyKey } from '../auth/keys.js';
import { checkClaims, verifyTokenSignature } from '../auth/token.js';
import { loadKeysConfig } from '../config/load.js';
import { parseDurationMs } from '../config/size.js';
import { GatewayError } from '../errors.js';
import { parseObjectPath, rawPathOf } from '../http/object-path.js';
import { generateKeypair, signLink, type LinkMethod } from '../sign/index.js';

/** Write a new keypair as cachegate's YAML (`auth:` with both keys), mode 0600. */
export async function runKeygen(out: string, force: boolean): Promise<number> {
  const { publicKey, privateKey } = await generateKeypair();
  const yaml = stringify({ auth: { public_key: publicKey, private_key: privateKey } });
  let fh;
  try {
    fh = await open(out, force ? 'w' : 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      console.error(`cachegate keygen: ${out} exists; use --force to overwrite it`);
      return 1;
    }
    throw err;
  }
  try {
    await fh.chmod(0o600); // also when --force overwrote a file with looser permissions
    await fh.writeFile(yaml);
  } finally {
    await fh.close();
  }
  console.log(`wrote keypair to ${out}`);
  console.log(`public_key: ${publicKey}`);
  return 0;
}

export interface SignArgs {
  bucket: string;
  path: string;
  method: string;
  expiresIn: string;
  baseUrl: string | undefined;
  config: string | undefined;
  key: string | undefined;
  kid: string | undefined;
}

/** Print a ready signed link. */
export async function runSign(args: SignArgs): Promise<number> {
  const method = args.method.toUpperCase();
  if (method !== 'GET' && method !== 'HEAD' && method !== 'PUT' && method !== 'DELETE') {
    throw new GatewayError('GW_ERR_BAD_REQUEST', `--method must be GET, HEAD, PUT or DELETE`);
  }
  let privateKey = args.key;
  let kid = args.kid;
  let baseUrl = args.baseUrl;
  if (!privateKey) {
    if (!args.config) throw new GatewayError('GW_ERR_BAD_REQUEST', 'give --key KEY or --config FILE');
    const config = await loadKeysConfig(args.config);
    const signer = pickSigner(createKeyring(config.auth), kid);
    privateKey = signer.privateKey;
    kid = signer.id;
    baseUrl ??= `http://${(config.listen ?? '0.0.0.0:8080').replace(/^0\.0\.0\.0:/, '127.0.0.1:')}`;
  }
  const expiresInSec = Math.round(parseDurationMs(args.expiresIn) / 1000);
  const link = await signLink({
    baseUrl: baseUrl ?? 'http://127.0.0.1:8080',
    bucket: args.bucket,
    path: args.path,
    method: method as LinkMethod,
    expiresIn: expiresInSec,
    privateKey: privateKey!,
    ...(kid ? { kid } : {}),
  });
  console.log(link);
  return 0;
}

function pickSigner(keys: VerifyKey[], kid: string | undefined): VerifyKey {
  const withPrivate = keys.filter((k) => k.privateKey && (kid === undefined || k.id === kid));
  if (withPrivate.length === 0) {
    throw new GatewayError('GW_ERR_BAD_REQUEST', kid ? `no private key with id '${kid}' in the config` : 'the config holds no private key');
  }
  return withPrivate[withPrivate.length - 1]!; // the newest key in auth.keys signs
}

/** Say whether a link is valid and, if not, exactly why. Exit 0 when valid, 1 when not. */
export async function runVerify(url: string, args: { config: string | undefined; publicKey: string | undefined }): Promise<number> {
  let keys: VerifyKey[];
  let skewMs = 0;
  if (args.publicKey) {
    keys = [{ id: undefined, publicKey: importPublicKey(args.publicKey, '--public-key'), privateKey: undefined }];
  } else if (args.config) {
    const config = await loadKeysConfig(args.config);
    keys = createKeyring(config.auth);
    skewMs = config.auth.clock_skew;
  } else {
    throw new GatewayError('GW_ERR_BAD_REQUEST', 'give --config FILE or --public-key KEY');
  }
  try {
    const parsed = new URL(url);
    const sig = parsed.searchParams.get('sig');
    if (!sig) throw new GatewayError('GW_ERR_UNAUTHORIZED', 'the URL has no sig parameter');
    const { bucket, key } = parseObjectPath(rawPathOf(url));
    const { claims, kid } = verifyTokenSignature(sig, keys);
    checkClaims(claims, { method: claims.m, bucket, key }, Math.floor(Date.now() / 1000), skewMs / 1000);
    const expires = new Date(claims.exp * 1000).toISOString();
    console.log(`valid: ${claims.m} ${bucket}/${key}, expires ${expires}${kid ? `, key ${kid}` : ''}`);
    return 0;
  } catch (err) {
    const reason = err instanceof GatewayError ? err.message : (err as Error).message;
    console.log(`invalid: ${reason}`);
    return 1;
  }
}
