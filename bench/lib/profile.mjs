/**
 * Summarizing a V8 .cpuprofile (node --cpu-prof): self time per function and per area
 * (our dist/ files, each node_modules package, Node internals, GC).
 */
import path from 'node:path';

function shortUrl(url, rootDir) {
  if (!url) return '';
  let u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm !== -1) return u.slice(nm + '/node_modules/'.length);
  if (u.startsWith(rootDir)) u = path.relative(rootDir, u);
  return u;
}

function areaOf(name, url) {
  if (!url) return name.startsWith('(') ? name : '(native)';
  if (url.startsWith('node:')) return 'node internals';
  const m = /^(@[^/]+\/[^/]+|[^/]+)\//.exec(url);
  if (url.startsWith('dist/')) return 'cachegate dist/';
  return m ? m[1] : url;
}

/** Self time per function and per area, busy time only ((idle) left out). */
export function analyzeProfile(profile, { rootDir, top = 20, window } = {}) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  // `window` = {fromEndUs, toEndUs}: keep samples taken between these many µs before the end
  // (the load run), leaving out startup and shutdown.
  const from = window ? profile.endTime - window.fromEndUs : -Infinity;
  const to = window ? profile.endTime - window.toEndUs : Infinity;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    if (t < from || t > to) continue;
    const id = profile.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const fns = new Map();
  const areas = new Map();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    const cf = n.callFrame;
    const name = cf.functionName || '(anonymous)';
    totalUs += us;
    if (name === '(idle)') {
      idleUs += us;
      continue;
    }
    const url = shortUrl(cf.url, rootDir);
    const key = `${name} ${url}:${cf.lineNumber + 1}`;
    const f = fns.get(key) ?? { name, url: url ? `${url}:${cf.lineNumber + 1}` : '', us: 0 };
    f.us += us;
    fns.set(key, f);
    const area = areaOf(name, url);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs || 1;

  // Inclusive time of our own functions (dist/): what each middleware and step costs with
  // everything it calls. A function on the stack twice counts once per sample.
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const chainMemo = new Map();
  const ourChain = (id) => {
    if (chainMemo.has(id)) return chainMemo.get(id);
    const n = byId.get(id);
    const up = parent.has(id) ? ourChain(parent.get(id)) : [];
    const url = shortUrl(n.callFrame.url, rootDir);
    const key = url.startsWith('dist/') ? `${n.callFrame.functionName || '(anonymous)'} ${url}:${n.callFrame.lineNumber + 1}` : undefined;
    const chain = key && !up.includes(key) ? [...up, key] : up;
    chainMemo.set(id, chain);
    return chain;
  };
  const incl = new Map();
  for (const [id, us] of selfUs) {
    if (byId.get(id).callFrame.functionName === '(idle)') continue;
    for (const k of ourChain(id)) incl.set(k, (incl.get(k) ?? 0) + us);
  }
  const inclusive = [...incl.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, us]) => {
      const sp = k.indexOf(' ');
      return { name: k.slice(0, sp), url: k.slice(sp + 1), ms: us / 1000, pct: (100 * us) / busyUs };
    });

  return {
    inclusive,
    totalMs: totalUs / 1000,
    idleMs: idleUs / 1000,
    busyMs: busyUs / 1000,
    functions: [...fns.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, url: f.url, ms: f.us / 1000, pct: (100 * f.us) / busyUs })),
    areas: [...areas.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([area, us]) => ({ area, ms: us / 1000, pct: (100 * us) / busyUs })),
  };
}
