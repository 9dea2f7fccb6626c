/**
 * Events the core emits; only `metrics/` turns them into series. Kept small and allocation-light.
 */
import type { StoreOp } from '../errors.js';

export type CoreEvent =
  | {
      type: 'store-op';
      storeId: string;
      op: StoreOp;
      outcome: 'ok' | 'not_found' | 'error';
      errorKind?: string;
      durationMs: number;
    }
  | { type: 'coalesced'; storeId: string }
  | { type: 'fill-done'; storeId: string; bytes: number; cached: boolean };

export type CoreEventListener = (event: CoreEvent) => void;
