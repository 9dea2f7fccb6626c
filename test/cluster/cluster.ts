/**
 * A cluster on loopback for the cluster tests: N gateway processes started the way the
 * one-process-per-core recipe starts them (docs/scaling.md, deploy/systemd/cachegate@.service:
 * one shared set of `CACHEGATE__*` variables, and per process only the port, the disk
 * subdirectory and the node id), and Debian's HAProxy running deploy/haproxy/haproxy.cfg with
 * only its addresses and socket path substituted.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { freePort } from '../helpers/free-port.js';

const REPO = path.resolve(import.meta.dirname, '../..');
const MAIN = path.join(REPO, 'dist/main.js');
export const SHIPPED_HAPROXY_CFG = path.join(REPO, 'deploy/haproxy/haproxy.cfg');
export const SYSTEMD_UNIT = path.join(REPO, 'deploy/systemd/cachegate@.service');

/**
 * The per-instance variables of deploy/systemd/cachegate@.service (its `Environment=` lines),
 * with the specifiers filled in as systemd would: %i the instance (the port), %C the cache root,
 * %H the host name.
 */
export async function unitEnvironment(port: number, cacheRoot: string, host: string): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const line of (await readFile(SYSTEMD_UNIT, 'utf8')).split('\n')) {
    const m = /^Environment=([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!.replaceAll('%i', String(port)).replaceAll('%C', cacheRoot).replaceAll('%H', host);
  }
  if (!env.CACHEGATE__LISTEN || !env.CACHEGATE__CACHE__DISK_PATH) throw new Error(`${SYSTEMD_UNIT}: per-instance listen and disk path not found`);
  return env;
}

/** Whether Debian's haproxy is on PATH (the cluster tests are skipped without it, and say so). */
export function haproxyVersion(): string | undefined {
  const r = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  return /HAProxy version (\S+)/.exec(r.stdout)?.[1] ?? 'unknown';
}

export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One gateway process of the cluster: the shared environment plus the unit's per-instance lines. */
export class GatewayNode {
  /** Its node id (`X-CG-Node`), as the unit makes it: host and port. */
  readonly name: string;
  readonly port: number;
  readonly #env: NodeJS.ProcessEnv;
  #child: ChildProcess | undefined;
  #stderr = '';

  private constructor(port: number, env: NodeJS.ProcessEnv) {
    this.port = port;
    this.name = env.CACHEGATE__SERVER__NODE_ID!;
    this.#env = env;
  }

  static async create(port: number, cacheRoot: string, sharedEnv: NodeJS.ProcessEnv): Promise<GatewayNode> {
    return new GatewayNode(port, { ...sharedEnv, ...(await unitEnvironment(port, cacheRoot, 'cluster-test')) });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Start the process and wait until /ready answers 200. */
  async start(): Promise<void> {
    const child = spawn(process.execPath, [MAIN, 'serve', '--config', 'env'], { env: this.#env, stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    this.#stderr = '';
    child.stderr!.on('data', (d: Buffer) => (this.#stderr = (this.#stderr + d.toString()).slice(-4000)));
    let exited = false;
    child.once('exit', () => (exited = true));
    await waitFor(`${this.name} /ready`, async () => {
      if (exited) throw new Error(`${this.name} exited: ${this.#stderr}`);
      try {
        return (await fetch(`${this.url}/ready`)).status === 200;
      } catch {
        return false;
      }
    });
  }

  /** Kill the process with `signal` and wait for it to be gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = once(child, 'exit');
    child.kill(signal);
    await gone;
  }
}

/** A running HAProxy on one of our configs. */
export class HaproxyInstance {
  readonly port: number;
  readonly socket: string;
  readonly #child: ChildProcess;
  #output = '';

  private constructor(port: number, socket: string, child: ChildProcess) {
    this.port = port;
    this.socket = socket;
    this.#child = child;
    const keep = (d: Buffer) => (this.#output = (this.#output + d.toString()).slice(-8000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /**
   * The shipped config with only the bind port, the three server addresses and the socket path
   * replaced; `edit` may change more (the hash-balance-factor measurement). Throws if the
   * shipped file no longer has the lines the tests rely on.
   */
  static async configFor(nodes: GatewayNode[], port: number, socket: string, edit?: (cfg: string) => string): Promise<string> {
    let cfg = await readFile(SHIPPED_HAPROXY_CFG, 'utf8');
    const swap = (from: string, to: string) => {
      if (!cfg.includes(from)) throw new Error(`${SHIPPED_HAPROXY_CFG} no longer contains '${from}'`);
      cfg = cfg.replace(from, to);
    };
    swap('bind :8080', `bind 127.0.0.1:${port}`);
    swap('stats socket /run/haproxy/admin.sock ', `stats socket ${socket} `);
    nodes.forEach((n, i) => swap(`127.0.0.1:${8101 + i} id ${i + 1}`, `127.0.0.1:${n.port} id ${i + 1}`));
    return edit ? edit(cfg) : cfg;
  }

  static async start(dir: string, nodes: GatewayNode[], edit?: (cfg: string) => string): Promise<HaproxyInstance> {
    const port = await freePort();
    const socket = path.join(dir, `haproxy-${port}.sock`);
    const file = path.join(dir, `haproxy-${port}.cfg`);
    await writeFile(file, await HaproxyInstance.configFor(nodes, port, socket, edit));
    // -db: foreground, no daemon; -W master-worker is not needed for one process.
    const child = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const hp = new HaproxyInstance(port, socket, child);
    let exited = false;
    child.once('exit', () => (exited = true));
    let last = '';
    try {
      await waitFor('haproxy with every server UP', async () => {
        if (exited) throw new Error('haproxy exited');
        try {
          const servers = await hp.servers();
          last = JSON.stringify(servers);
          return servers.length === nodes.length && servers.every((s) => s.status === 'UP');
        } catch {
          return false;
        }
      });
    } catch (err) {
      await hp.stop();
      throw new Error(`${(err as Error).message}; servers ${last}; output: ${hp.#output}`);
    }
    return hp;
  }

  /** A runtime API command on the stats socket; resolves with the answer. */
  command(cmd: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const sock = net.connect(this.socket);
      let out = '';
      sock.on('data', (d: Buffer) => (out += d.toString()));
      sock.on('end', () => resolve(out));
      sock.on('error', reject);
      sock.end(`${cmd}\n`);
    });
  }

  /** The backend's servers as HAProxy sees them now (`show stat`). */
  async servers(): Promise<{ name: string; status: string; weight: number }[]> {
    const csv = await this.command('show stat');
    const [header, ...rows] = csv.split('\n').filter(Boolean);
    const cols = header!.replace(/^# /, '').split(',');
    const at = (name: string) => cols.indexOf(name);
    return rows
      .map((r) => r.split(','))
      .filter((f) => f[at('pxname')] === 'cachegate' && f[at('svname')] !== 'BACKEND')
      .map((f) => ({ name: f[at('svname')]!, status: f[at('status')]!, weight: Number(f[at('weight')]) }));
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const gone = once(this.#child, 'exit');
    this.#child.kill('SIGTERM');
    await gone;
  }
}
