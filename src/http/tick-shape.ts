/**
 * Keep one of Node's `process.nextTick` objects alive for the life of the process.
 *
 * Every request makes several tick objects (Node's streams and http call `process.nextTick` on
 * every response), each built by one object literal in Node's task queue with computed (symbol)
 * keys. V8 builds such a literal from a map chain that nothing but live tick objects keeps
 * alive. When a major GC runs while no tick object is alive (an idle gateway, between bursts),
 * the chain is collected and the next tick object gets a new one. After a few such GCs the
 * literal's property-definition sites have seen too many maps, go megamorphic, and from then on
 * define every tick object's properties in the runtime (`DefineKeyedOwnPropertyInLiteral`,
 * `MigrateToMap`): for the rest of the process.
 *
 * Measured with callgrind (instructions per 4 KiB memory hit, 10,000 hits after 20,000 of
 * warm-up), on a bare node:http server: Node 20.20 67,000, or 106,000 after twelve idle GCs at
 * start-up; Node 24.22 58,000, or 80,000. The same server that first keeps one tick object
 * alive stays at 67,000 and 58,000. Gateway processes fell into it at random (up to 40,000 more
 * instructions per hit), depending on when their GCs ran. See BENCHMARKS.md, "Session 30".
 *
 * One tick object held from start-up keeps the chain (and so the maps the sites know) alive.
 * It is caught with an async hook that is enabled for one `nextTick` call and disabled at once.
 */
import { createHook } from 'node:async_hooks';

let kept: object | undefined;

/** Keep a tick object alive from now on (idempotent). */
export function keepTickShape(): void {
  if (kept) return;
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject') kept ??= resource as object;
    },
  });
  hook.enable();
  try {
    process.nextTick(noop);
  } finally {
    hook.disable();
  }
}

/** The tick object kept alive, once `keepTickShape` ran (for tests). */
export function keptTickObject(): object | undefined {
  return kept;
}

function noop(): void {}
