/**
 * Statistics kept in plain numbers: the hot path bumps fields on objects it already holds, and
 * prom-client only sees them when the registry is scraped. A prom-client `observe()` or `inc()`
 * hashes its labels and allocates on every call (about 1 µs for one request's three series);
 * a cell costs a few nanoseconds.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import type { TierStats } from '../cache/types.js';

/** One labelled series of a {@link CellHistogram}, updated in place by {@link observeCell}. */
export interface HistogramCell {
  readonly labels: Readonly<Record<string, string>>;
  /** Per-bucket (not cumulative) counts; the last slot is the +Inf bucket. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

export interface CellHistogramOptions<T extends string> {
  name: string;
  help: string;
  labelNames: readonly T[];
  /** Upper bounds, ascending. */
  buckets: readonly number[];
  registry: Registry;
}

/**
 * A prom-client Histogram whose values live in cells the caller keeps. The registry reads a
 * metric through `get()` (and `getForPromString()` when present); both answer from the cells,
 * so the base class's own label-hashing storage is never used. Call `cell()` once per label set
 * and keep the result: it is what makes `observeCell` allocation-free.
 */
export class CellHistogram<T extends string> extends Histogram<T> {
  readonly bounds: Float64Array;
  readonly #name: string;
  readonly #help: string;
  readonly #labelNames: readonly T[];
  readonly #cells: HistogramCell[] = [];

  constructor(options: CellHistogramOptions<T>) {
    super({
      name: options.name,
      help: options.help,
      labelNames: options.labelNames,
      buckets: [...options.buckets],
      registers: [options.registry],
    });
    this.bounds = Float64Array.from(options.buckets);
    this.#name = options.name;
    this.#help = options.help;
    this.#labelNames = options.labelNames;
  }

  /** A new zeroed series for these labels. Callers cache it; two calls make two series. */
  cell(labels: Readonly<Record<T, string>>): HistogramCell {
    const own: Record<string, string> = {};
    for (const name of this.#labelNames) own[name] = labels[name];
    const cell: HistogramCell = { labels: own, counts: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 };
    this.#cells.push(cell);
    return cell;
  }

  override reset(): void {
    super.reset();
    // The base constructor calls reset() before this class's fields exist.
    if (!(#cells in this)) return;
    for (const cell of this.#cells) {
      cell.counts.fill(0);
      cell.sum = 0;
      cell.count = 0;
    }
  }

  override async get(): Promise<Awaited<ReturnType<Histogram<T>['get']>>> {
    const bucketName = `${this.#name}_bucket`;
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const cell of this.#cells) {
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += cell.counts[i] ?? 0;
        values.push({ labels: { ...cell.labels, le: this.bounds[i] ?? 0 }, value: cumulative, metricName: bucketName });
      }
      values.push({ labels: { ...cell.labels, le: '+Inf' }, value: cell.count, metricName: bucketName });
      values.push({ labels: { ...cell.labels }, value: cell.sum, metricName: `${this.#name}_sum` });
      values.push({ labels: { ...cell.labels }, value: cell.count, metricName: `${this.#name}_count` });
    }
    // `le` is not one of T, which the declared value type cannot express.
    return { name: this.#name, help: this.#help, type: 'histogram', values, aggregator: 'sum' } as unknown as Awaited<
      ReturnType<Histogram<T>['get']>
    >;
  }

  /** prom-client's Registry prefers this undeclared method over `get()`; answer from the cells too. */
  getForPromString(): ReturnType<CellHistogram<T>['get']> {
    return this.get();
  }
}

/** Count one observation into a cell (no allocation). */
export function observeCell(cell: HistogramCell, bounds: Float64Array, value: number): void {
  let i = 0;
  while (i < bounds.length && value > (bounds[i] as number)) i++;
  cell.counts[i]! += 1;
  cell.sum += value;
  cell.count += 1;
}

export type Inc<T extends string> = (labels: Record<T, string>, value: number) => void;

/**
 * A counter whose values are copied from plain numbers each time the registry is scraped: `fill`
 * reports every current total through `inc`, so scrapes are idempotent and never double-count.
 */
export function mirroredCounter<T extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly T[],
  fill: (inc: Inc<T>) => void,
): Counter<T> {
  return new Counter<T>({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      fill((labels, value) => this.inc(labels as Partial<Record<T, string>>, value));
    },
  });
}

/** One tier in the /stats JSON. */
export interface TierStatsJson {
  entries: number;
  bytes: number;
  max_bytes: number;
}

/**
 * The /stats JSON. Counters are running totals since start. `cache` (and cachegate's flat
 * `cache_entries` / `cache_bytes`) add every tier up: an object held in both memory and on disk
 * counts once per tier. `tiers` has one member per tier (`memory`, and `disk` when configured).
 */
export interface GatewayStats {
  /** `server.node_id`: which node of a cluster this is. */
  node_id?: string;
  requests_total: number;
  auth_fail_total: number;
  cache_hit_total: number;
  cache_miss_total: number;
  upstream_ok_total: number;
  upstream_err_total: number;
  cache_entries: number;
  cache_bytes: number;
  cache: { entries: number; bytes: number };
  tiers: Record<string, TierStatsJson>;
}

/** A tier's name and its current size, as `createMetrics` reads them. */
export type TierSnapshot = { name: string } & TierStats;
