/**
 * What the numbers were measured on: CPU, cores, memory, Node, the peers' versions, the commit.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { PEER_NODE } from './peers.mjs';

function firstLine(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd });
  if (r.error) return undefined;
  return `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim().split('\n')[0]?.trim() || undefined;
}

export function machineInfo({ rootDir, bins }) {
  let cpu = os.cpus()[0]?.model;
  try {
    cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpu;
  } catch {
    // not Linux
  }
  const commit = firstLine('git', ['rev-parse', 'HEAD'], rootDir);
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'src', 'package.json', 'package-lock.json'], { encoding: 'utf8', cwd: rootDir }).stdout?.trim();
  return {
    cpu,
    cores: os.cpus().length,
    memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    /** The Node the gateway (and raw node:http) ran on. */
    node: PEER_NODE === process.execPath ? process.version : firstLine(PEER_NODE, ['--version']),
    /** The Node of the load generator and the origin (the same in every run on one machine). */
    benchNode: process.version,
    nginx: bins.nginx ? firstLine(bins.nginx, ['-v'])?.replace(/^nginx version:\s*/, '') : undefined,
    varnish: bins.varnishd ? /varnish-[\w.]+/.exec(firstLine(bins.varnishd, ['-V']) ?? '')?.[0] : undefined,
    wrk: bins.wrk ? /^wrk\s+(\S+)/.exec(firstLine(bins.wrk, ['-v']) ?? '')?.[1] : undefined,
    taskset: Boolean(bins.taskset),
    /** 1-minute load average when the bench started: other work on the machine skews every figure. */
    loadavg1: Math.round(os.loadavg()[0] * 100) / 100,
    commit,
    /** src/ or package files differ from the commit (others may be editing them). */
    dirty: Boolean(dirty),
  };
}

export function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** /proc/<pid>/status memory fields in bytes (Linux). */
export function procMemory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
}
