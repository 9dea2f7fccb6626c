/**
 * keepTickShape (http/tick-shape.ts): one of Node's nextTick objects is kept alive, so that major
 * GCs run while the process is idle never take the map chain V8 builds tick objects from.
 *
 * The child processes run with V8's natives syntax (%HaveSameMap) and an exposed gc, against the
 * built module in dist/ (`npm test` builds first).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { keepTickShape, keptTickObject } from '../../src/http/tick-shape.js';

const DIST = pathToFileURL(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/http/tick-shape.js')).href;

/** What an idle gateway's GCs look like: a few ticks, nothing left alive, a major GC; twelve times. */
const IDLE_GCS = `
const { createHook } = await import('node:async_hooks');
const idle = async () => {
  for (let r = 0; r < 12; r++) {
    for (let i = 0; i < 20; i++) process.nextTick(() => {}, i);
    await new Promise((res) => setTimeout(res, 20));
    gc();
  }
};
const tick = () => {
  let t;
  const h = createHook({ init(_id, type, _tr, res) { if (type === 'TickObject') t ??= res; } }).enable();
  process.nextTick(() => {});
  h.disable();
  return t;
};
`;

function child(body: string): Record<string, unknown> {
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--expose-gc', '--input-type=module', '-e', `${IDLE_GCS}\n${body}`], { encoding: 'utf8', timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

describe('keepTickShape', () => {
  it('keeps one tick object, once', () => {
    keepTickShape();
    const kept = keptTickObject();
    expect(kept).toBeTypeOf('object');
    expect(typeof (kept as { callback?: unknown }).callback).toBe('function');
    keepTickShape();
    expect(keptTickObject()).toBe(kept);
  });

  it('without it, nothing keeps a tick object alive across idle GCs (so their maps can go)', () => {
    const out = child(`
      const ref = new WeakRef(tick());
      await idle();
      console.log(JSON.stringify({ alive: ref.deref() !== undefined }));
    `);
    expect(out).toEqual({ alive: false });
  });

  it('with it, tick objects made after idle GCs still have the map of the kept one', () => {
    const out = child(`
      const { keepTickShape, keptTickObject } = await import(${JSON.stringify(DIST)});
      keepTickShape();
      await idle();
      const fresh = tick();
      console.log(JSON.stringify({ sameMap: %HaveSameMap(keptTickObject(), fresh) }));
    `);
    expect(out).toEqual({ sameMap: true });
  });
});
