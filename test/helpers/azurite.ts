import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { BlobServiceClient } from '@azure/storage-blob';

/** Options for {@link startAzurite}. */
export interface StartAzuriteOptions {
  /** Blob containers to create once the service is up. */
  containers?: string[];
}

/** A running Azurite blob service child process, as returned by {@link startAzurite}. */
export interface AzuriteInstance {
  /** Connection string for the well-known `devstoreaccount1` emulator account. */
  connectionString: string;
  /** Blob service URL including the account segment, e.g. `http://127.0.0.1:41234/devstoreaccount1`. */
  blobEndpoint: string;
  /** Port the blob service actually bound. */
  port: number;
  /** Emulator account name (`devstoreaccount1`). */
  accountName: string;
  /** Emulator account key (the public, well-known Azurite key). */
  accountKey: string;
  /** Temp directory used as the child's working directory; removed by `stop()`. */
  directory: string;
  /** SIGTERMs the child (SIGKILL after 3 s), waits for it to exit and removes `directory`. Idempotent. */
  stop(): Promise<void>;
}

/** Well-known Azurite / Azure Storage Emulator account name. */
export const AZURITE_ACCOUNT_NAME = 'devstoreaccount1';
/** Well-known Azurite / Azure Storage Emulator account key (public, not a secret). */
export const AZURITE_ACCOUNT_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

const HOST = '127.0.0.1';
const STARTUP_TIMEOUT_MS = 20_000;
const KILL_GRACE_MS = 3_000;
const MAX_CAPTURED_OUTPUT = 64 * 1024;
/** Printed by azurite/dist/src/blob/main.js once the HTTP server is listening. */
const LISTENING_LINE = /successfully listens on https?:\/\/[^\s:]+:(\d+)/;

const AZURITE_BLOB_MAIN = createRequire(import.meta.url).resolve(
  'azurite/dist/src/blob/main.js',
);

/** Children still alive; killed synchronously if the test process exits without `stop()`. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function trackChild(child: ChildProcess): void {
  liveChildren.add(child);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of liveChildren) c.kill('SIGKILL');
    });
  }
}

/**
 * Starts Azurite's blob service as a child process (`node .../azurite/dist/src/blob/main.js`)
 * on `127.0.0.1`, with in-memory persistence, telemetry disabled, loose mode and
 * the API-version check skipped (`@azure/storage-blob` 12.32 sends
 * `x-ms-version: 2026-04-06`, newer than the `2025-11-05` Azurite 3.35 knows).
 *
 * The child binds `--blobPort 0` and the real port is parsed from its
 * "successfully listens on" line, so there is no pick-then-bind race. Startup
 * fails after 20 s (or if the child exits early) with its captured output.
 *
 * @param opts.containers Container names to create before returning.
 * @returns Connection details plus a `stop()` that tears everything down.
 */
export async function startAzurite(opts: StartAzuriteOptions = {}): Promise<AzuriteInstance> {
  const directory = await mkdtemp(join(tmpdir(), 'cachegate-azurite-'));

  // These would switch Azurite to SQL metadata storage / different accounts.
  const env = { ...process.env };
  delete env.AZURITE_DB;
  delete env.AZURITE_ACCOUNTS;

  // `--inMemoryPersistence` is mutually exclusive with `--location`; Azurite
  // then uses its cwd as "location", so the cwd is the temp dir.
  const child = spawn(
    process.execPath,
    [
      AZURITE_BLOB_MAIN,
      '--blobHost', HOST,
      '--blobPort', '0',
      '--inMemoryPersistence',
      '--silent',
      '--skipApiVersionCheck',
      '--loose',
      '--disableTelemetry',
    ],
    { cwd: directory, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  trackChild(child);

  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      liveChildren.delete(child);
      resolve();
    });
  });

  let output = '';
  const capture = (chunk: string): void => {
    output = (output + chunk).slice(-MAX_CAPTURED_OUTPUT);
  };
  child.stdout.setEncoding('utf8').on('data', capture);
  child.stderr.setEncoding('utf8').on('data', capture);
  child.on('error', (err) => capture(`\n[child process error] ${err.message}\n`));

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      try {
        const running =
          child.pid !== undefined && child.exitCode === null && child.signalCode === null;
        if (running) {
          child.kill('SIGTERM');
          const killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
          try {
            await exited;
          } finally {
            clearTimeout(killTimer);
          }
        }
      } finally {
        await rm(directory, { recursive: true, force: true });
      }
    })();
    return stopping;
  };

  try {
    const port = await waitForListening(child, () => output);
    const blobEndpoint = `http://${HOST}:${port}/${AZURITE_ACCOUNT_NAME}`;
    const connectionString =
      `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT_NAME};` +
      `AccountKey=${AZURITE_ACCOUNT_KEY};BlobEndpoint=${blobEndpoint};`;

    const service = BlobServiceClient.fromConnectionString(connectionString);
    for (const name of opts.containers ?? []) {
      await service.getContainerClient(name).create();
    }

    return {
      connectionString,
      blobEndpoint,
      port,
      accountName: AZURITE_ACCOUNT_NAME,
      accountKey: AZURITE_ACCOUNT_KEY,
      directory,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Resolves with the bound port once the child prints its listening line. */
function waitForListening(child: ChildProcess, getOutput: () => string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const fail = (reason: string): void => {
      cleanup();
      reject(
        new Error(`Azurite blob service failed to start: ${reason}\n--- azurite output ---\n${getOutput()}`),
      );
    };
    const onData = (): void => {
      const match = LISTENING_LINE.exec(getOutput());
      if (match?.[1] !== undefined) {
        cleanup();
        resolve(Number(match[1]));
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void =>
      fail(`process exited early (code ${String(code)}, signal ${String(signal)})`);
    const onError = (err: Error): void => fail(`spawn error: ${err.message}`);
    const timer = setTimeout(
      () => fail(`timed out after ${STARTUP_TIMEOUT_MS} ms waiting for listening line`),
      STARTUP_TIMEOUT_MS,
    );
    function cleanup(): void {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      child.off('error', onError);
    }
    // Registered after the capture listeners, so getOutput() already includes the chunk.
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}
