/**
 * How much CPU something other than the bench used while a figure was measured. The bench's own
 * processes are its children's process groups (servers, wrk, the client) and itself; everything
 * else busy on the machine (other builds, tests, steal by the hypervisor) is "foreign" and skews
 * the figure. Linux /proc only; elsewhere the monitor reports nothing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { ownProcessGroups } from './procs.mjs';

function snapshot() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal. irq and softirq are left out: loopback TCP
  // is mostly processed in softirq, which is charged to no process, and here it is our traffic.
  const busy = f[0] + f[1] + f[2];
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy, steal: f[7], total, ours: ticksOf(ownProcessGroups(), process.pid) };
}

/** CPU ticks (user + system) used so far by the processes in `groups`, and by `pid` itself. */
function ticksOf(groups, pid) {
  let ticks = 0;
  for (const d of readdirSync('/proc')) {
    if (d.charCodeAt(0) > 57) continue; // not a pid
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      // Fields after "(comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
      const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
      if (groups.has(Number(rest[2])) || Number(d) === pid) ticks += Number(rest[11]) + Number(rest[12]);
    } catch {
      // gone meanwhile
    }
  }
  return ticks;
}

/**
 * CPU time (user + system, in ms) used so far by every process in process group `pgid` (a peer:
 * the gateway, nginx's master and worker, varnishd and its children). What a server spends per
 * request does not depend on how much of the CPU other processes took, so it stays meaningful
 * on a busy machine where req/s does not.
 */
export function groupCpuMs(pgid) {
  if (!pgid) return undefined;
  try {
    return ticksOf(new Set([pgid])) * 10; // USER_HZ is 100 on Linux
  } catch {
    return undefined; // no /proc
  }
}

/** Run `fn` and report the server group's CPU per request: µs, or undefined without /proc. */
export async function withServerCpu(pgid, fn, requestsOf) {
  const a = groupCpuMs(pgid);
  const result = await fn();
  const b = groupCpuMs(pgid);
  const n = requestsOf(result);
  if (a === undefined || b === undefined || !n) return result;
  return { ...result, serverCpuUsPerReq: ((b - a) * 1000) / n };
}

/**
 * Run `fn` and sample the machine from `skipMs` after its start to `windowMs` later (inside the
 * load, while every process of ours is still alive). Resolves with fn's result plus
 * `foreignCores` (cores' worth of CPU used by others) and `stealCores`.
 */
export async function withLoadMonitor(fn, { skipMs = 1000, windowMs }) {
  let a;
  let b;
  const t1 = setTimeout(() => {
    try {
      a = snapshot();
    } catch {
      // no /proc
    }
  }, skipMs);
  const t2 = setTimeout(() => {
    try {
      b = snapshot();
    } catch {
      // no /proc
    }
  }, skipMs + windowMs);
  try {
    const result = await fn();
    if (!a || !b) return result;
    const perCore = (b.total - a.total) / os.cpus().length || 1;
    const foreign = (b.busy - a.busy - (b.ours - a.ours)) / perCore;
    return { ...result, foreignCores: Math.max(0, Math.round(foreign * 100) / 100), stealCores: Math.round(((b.steal - a.steal) / perCore) * 100) / 100 };
  } finally {
    clearTimeout(t1);
    clearTimeout(t2);
  }
}

/**
 * Run `fn` (a short-lived child that reports its own CPU time as `cpuUs`) and compare the
 * machine's busy time over the whole call with ours plus that child's.
 */
export async function withForeignCheck(fn) {
  let a;
  try {
    a = snapshot();
  } catch {
    return fn();
  }
  const result = await fn();
  const b = snapshot();
  const perCore = (b.total - a.total) / os.cpus().length || 1;
  const clientJiffies = (result?.cpuUs ?? 0) / 1e4; // USER_HZ is 100 on Linux
  const foreign = (b.busy - a.busy - (b.ours - a.ours) - clientJiffies) / perCore;
  return { ...result, foreignCores: Math.max(0, Math.round(foreign * 100) / 100), stealCores: Math.round(((b.steal - a.steal) / perCore) * 100) / 100 };
}

let quietBudgetMs = 0;

/** Set the total time waitForQuiet may spend over the whole bench. */
export function setQuietBudget(ms) {
  quietBudgetMs = ms;
}

/**
 * Wait (within the budget) until processes outside the bench use less than `thresholdCores`,
 * sampled over `sampleMs`. Resolves with {waitedMs, foreignCores} (the last sample).
 */
export async function waitForQuiet({ thresholdCores, sampleMs = 300, maxMs = 15_000 }) {
  const t0 = performance.now();
  let foreign = 0;
  for (;;) {
    let a;
    try {
      a = snapshot();
    } catch {
      return { waitedMs: 0, foreignCores: undefined };
    }
    await new Promise((r) => setTimeout(r, sampleMs));
    const b = snapshot();
    const perCore = (b.total - a.total) / os.cpus().length || 1;
    foreign = Math.max(0, (b.busy - a.busy - (b.ours - a.ours)) / perCore);
    const waited = performance.now() - t0;
    if (foreign < thresholdCores || waited >= maxMs || waited >= quietBudgetMs) {
      quietBudgetMs = Math.max(0, quietBudgetMs - waited);
      return { waitedMs: Math.round(waited), foreignCores: Math.round(foreign * 100) / 100 };
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
