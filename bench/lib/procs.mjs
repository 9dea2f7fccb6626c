/**
 * Child processes and temp dirs the bench owns, and their cleanup on every way out: normal end,
 * error, Ctrl-C, SIGTERM. Each child runs in its own process group (so nginx's and Varnish's
 * workers go with their master) and is pinned to a core with taskset when taskset exists.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const children = new Set();
const tempDirs = new Set();
const OUTPUT_KEEP_CHARS = 64 * 1024;
const STOP_GRACE_MS = 4000;

/** The process groups of every child still running (each child leads its own group). */
export function ownProcessGroups() {
  return new Set([...children].map((p) => p.pid).filter(Boolean));
}

/** Whether a command is on PATH. */
export function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export const TASKSET = which('taskset');

/** Prefix a command with `taskset -c <core>` when taskset exists (and the core is set). */
export function pinned(core, cmd, args) {
  if (!TASKSET || core === undefined) return [cmd, args];
  return [TASKSET, ['-c', String(core), cmd, ...args]];
}

/** A temp dir removed at exit. */
export function makeTempDir(prefix) {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir) {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** A port that was free a moment ago (for servers that cannot bind port 0 and report it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Start a long-running child. `ready(out)` is called with the accumulated stdout+stderr until it
 * returns a truthy value (the result), or `probe()` is polled until it resolves truthy.
 */
export async function startChild({ name, cmd, args = [], env, cwd, core, ready, probe, timeoutMs = 20_000 }) {
  const [c, a] = pinned(core, cmd, args);
  const child = spawn(c, a, {
    cwd,
    env: env ?? process.env,
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true, // own process group: Ctrl-C reaches the bench only, and we kill whole groups
  });
  const proc = {
    name,
    child,
    pid: child.pid,
    output: '',
    exited: false,
    exitCode: undefined,
    stop: () => stopChild(proc),
  };
  children.add(proc);
  const append = (d) => {
    proc.output += d.toString();
    if (proc.output.length > OUTPUT_KEEP_CHARS * 2) proc.output = proc.output.slice(-OUTPUT_KEEP_CHARS);
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  child.stdin.on('error', () => {});
  const exitedP = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      proc.exited = true;
      proc.exitCode = code ?? signal;
      children.delete(proc);
      resolve();
    }),
  );
  proc.exitedP = exitedP;
  child.once('error', (err) => {
    proc.output += `\nspawn error: ${err.message}`;
  });

  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      if (proc.exited) throw new Error(`${name} exited (${proc.exitCode}) before it was ready:\n${tail(proc.output)}`);
      if (ready) {
        const r = ready(proc.output);
        if (r) return Object.assign(proc, { info: r });
      }
      if (probe) {
        const r = await probe().catch(() => undefined);
        if (r) return Object.assign(proc, { info: r });
      }
      if (Date.now() > deadline) throw new Error(`${name} was not ready after ${timeoutMs} ms:\n${tail(proc.output)}`);
      await sleep(ready && !probe ? 25 : 100);
    }
  } catch (err) {
    await stopChild(proc);
    throw err;
  }
}

/** Parse the first JSON line of a child's output. */
export function jsonLine(out) {
  for (const line of out.split('\n')) {
    const t = line.trim();
    if (t.startsWith('{') && t.endsWith('}')) {
      try {
        return JSON.parse(t);
      } catch {
        // not ours
      }
    }
  }
  return undefined;
}

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** SIGTERM the child's process group, SIGKILL it after a grace period. */
export async function stopChild(proc) {
  if (!proc.pid) return;
  if (!proc.exited) {
    killGroup(proc.pid, 'SIGTERM');
    proc.child.stdin?.end();
    const timer = setTimeout(() => killGroup(proc.pid, 'SIGKILL'), STOP_GRACE_MS);
    await proc.exitedP;
    clearTimeout(timer);
  }
  // Workers of a master that exited (nginx, varnish) may linger briefly: make sure.
  killGroup(proc.pid, 'SIGKILL');
  children.delete(proc);
}

/** Stop every child (in parallel) and remove every temp dir. */
export async function cleanupAll() {
  await Promise.all([...children].map((p) => stopChild(p)));
  for (const d of [...tempDirs]) removeTempDir(d);
}

/** Last resort from a synchronous exit handler. */
export function cleanupAllSync() {
  for (const p of children) killGroup(p.pid, 'SIGKILL');
  children.clear();
  for (const d of [...tempDirs]) {
    try {
      removeTempDir(d);
    } catch {
      // best effort
    }
  }
}

/** Run a short command to completion; resolves with {code, stdout, stderr}. Tracked for cleanup. */
export function runCommand(cmd, args, { core, timeoutMs = 120_000, env } = {}) {
  const [c, a] = pinned(core, cmd, args);
  return new Promise((resolve) => {
    const child = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: env ?? process.env });
    const proc = { name: cmd, child, pid: child.pid, exited: false, output: '' };
    proc.exitedP = new Promise((r) => child.once('exit', r));
    children.add(proc);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      children.delete(proc);
      resolve({ code: -1, stdout, stderr: stderr + err.message });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      proc.exited = true;
      children.delete(proc);
      resolve({ code: code ?? signal, stdout, stderr });
    });
  });
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

export function tail(s, lines = 20) {
  return s.trim().split('\n').slice(-lines).join('\n');
}
