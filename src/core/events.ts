/**
 * Events the core emits; only `metrics/` turns them into series. Kept small and allocation-light.
 */
import type { StoreOp } from '../errors.js';

export type CoreEvent =
  | {
      type: 'store-op';
      storeId: string;
      op: StoreOp;
      /** `rejected`: the store refused the key for a reason of the client's making (not counted). */
      outcome: 'ok' | 'not_found' | 'error' | 'rejected';
      errorKind?: string;
      durationMs: number;
    }
  | { type: 'coalesced'; storeId: string }
  /** Store protection (store-guard.ts): a retried read, a hedged GET, a call refused fast. */
  | { type: 'store-retry'; storeId: string }
  | { type: 'store-hedge'; storeId: string }
  | { type: 'store-fail-fast'; storeId: string; reason: 'breaker' | 'queue' }
  | { type: 'breaker'; storeId: string; state: 'closed' | 'open' | 'half_open' }
  /** A stale copy served (core/freshness.ts): for a failing store, or while it is revalidated. */
  | { type: 'stale-served'; storeId: string; reason: 'error' | 'revalidating' }
  | { type: 'fill-done'; storeId: string; bytes: number; cached: boolean }
  /**
   * A reader's fill found the fill budget (`max_fill_memory`) full and waited `waitedMs` for
   * room: `granted` it then started, else the reader was served uncached.
   */
  | { type: 'fill-budget-wait'; storeId: string; waitedMs: number; granted: boolean }
  /** Body bytes received from a store (fills and uncached reads), for "store bytes per client byte". */
  | { type: 'store-bytes'; storeId: string; bytes: number };

export type CoreEventListener = (event: CoreEvent) => void;
