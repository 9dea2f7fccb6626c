/**
 * Metrics: the only place events become Prometheus series. Each instance owns its prom-client
 * Registry (never the global one), so two gateways in one process, or two tests, share nothing.
 *
 * cachegate's series keep their names and labels (`cachegate_requests_total{method,status}` and
 * the rest): dashboards built on the Rust gateway keep working. Next to them are conventional
 * series in base units (seconds, bytes) with bounded labels: a method outside the known few is
 * `OTHER`, free-form labels (error kinds, disk ops, tier names) that do not look like identifiers
 * become `other`, bucket ids are labels, and object keys are never.
 *
 * Everything the hot path touches is a plain number in a cell looked up without allocating; the
 * registry reads the cells when scraped (see stats.ts).
 */
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { TierEvent } from '../cache/types.js';
import type { CoreEvent } from '../core/events.js';
import type { StoreOp } from '../errors.js';
import {
  CellHistogram,
  mirroredCounter,
  observeCell,
  type GatewayStats,
  type HistogramCell,
  type Inc,
  type TierSnapshot,
  type TierStatsJson,
} from './stats.js';

export type { GatewayStats, TierSnapshot, TierStatsJson } from './stats.js';

/** cachegate's upstream latency buckets, in milliseconds. */
export const UPSTREAM_LATENCY_BUCKETS_MS = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000] as const;
/** Whole-request durations: sub-millisecond memory hits up to long downloads. */
export const HTTP_DURATION_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;
/** One store call, until it answers (a body may flow on afterwards). */
export const STORE_DURATION_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

const METHOD_LABELS = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'OTHER'] as const;
const OTHER_METHOD = 6;
const CACHE_LABELS = ['hit', 'miss', 'none'] as const;
const HIT = 0;
const MISS = 1;
const NONE = 2;
const STORE_OPS = ['head', 'get', 'put', 'delete'] as const satisfies readonly StoreOp[];
/** cachegate labels upstream series with the HTTP method that caused the call. */
const STORE_OP_METHODS = ['HEAD', 'GET', 'PUT', 'DELETE'] as const;
const OUTCOMES = ['ok', 'not_found', 'error'] as const;
const OTHER_LABEL = 'other';
/** Distinct values a free-form label (error kind, disk op, tier, reason) may take before `other`. */
const MAX_FREE_LABEL_VALUES = 32;

export interface MetricsOptions {
  /** Current size of each cache tier; read on every scrape and every /stats, so keep it cheap. */
  tiers: () => TierSnapshot[];
  /** Node.js process metrics (`process_*`, `nodejs_*`) in the same registry; default true. */
  collectDefault?: boolean;
  /** `server.node_id`, reported in /stats (which node of a cluster answered). */
  nodeId?: string;
  /** Calls waiting in each store's queue (store protection), read at scrape time. */
  storeQueues?: () => Iterable<[storeId: string, depth: number]>;
}

const BREAKER_STATE_VALUE = { closed: 0, half_open: 1, open: 2 } as const;

/** One HTTP request, as the access-log middleware sees it when the response is done. */
export interface RequestObservation {
  method: string;
  status: number;
  /** `hit`/`miss` for object reads answered from cache or from the store; `none` otherwise. */
  cache: 'hit' | 'miss' | 'none';
  durationSec: number;
  /** Body bytes sent to the client. */
  bytes?: number;
}

interface RequestSeries {
  readonly cell: HistogramCell;
  readonly method: number;
  readonly status: string;
  readonly cache: number;
}

interface BucketSeries {
  coalesced: number;
  fillBytes: number;
  /** Body bytes received from the store, for every GET (fills and uncached reads). */
  storeBytes: number;
  retries: number;
  hedges: number;
  failFastBreaker: number;
  failFastQueue: number;
  /** Stale copies served: standing in for a failing store, and while a revalidation runs. */
  staleOnError: number;
  staleRevalidating: number;
  /** 0 closed, 1 half open, 2 open. */
  breaker: number;
  /** Store-call durations, indexed `op * 3 + outcome`. */
  readonly ops: Array<HistogramCell | undefined>;
  /** Fill-budget waits: granted (0) and given up, served uncached (1). */
  readonly budgetWaits: Array<HistogramCell | undefined>;
}

interface TierSeries {
  hits: number;
  misses: number;
  evictions: number;
  readonly rejected: Map<string, number>;
}

/** Build a metrics instance with its own registry. */
export function createMetrics(options: MetricsOptions): Metrics {
  return new Metrics(options);
}

/**
 * Turns requests, core events and tier events into series; build it with `createMetrics`. The
 * listeners never throw and never allocate per call once a label set has been seen.
 */
export class Metrics {
  readonly #registry = new Registry();
  readonly #tiers: () => TierSnapshot[];
  readonly #nodeId: string | undefined;

  // Running totals for /stats.
  #requests = 0;
  #authFails = 0;
  #hits = 0;
  #misses = 0;
  #upstreamOk = 0;
  #upstreamErr = 0;

  readonly #requestSeries = new Map<number, RequestSeries>();
  readonly #servedBytes = new Float64Array(CACHE_LABELS.length);
  readonly #authFailsByMethod = new Float64Array(METHOD_LABELS.length);
  readonly #upstreamOkByOp = new Float64Array(STORE_OPS.length);
  readonly #upstreamErrByOp = STORE_OPS.map(() => new Map<string, number>());
  readonly #upstreamLatencyByOp: Array<HistogramCell | undefined> = [];
  readonly #buckets = new Map<string, BucketSeries>();
  readonly #tierSeries = new Map<string, TierSeries>();
  readonly #diskErrors = new Map<string, number>();
  readonly #freeLabels = new FreeLabels();

  readonly #httpDuration: CellHistogram<'method' | 'status' | 'cache'>;
  readonly #upstreamLatency: CellHistogram<'method'>;
  readonly #storeDuration: CellHistogram<'bucket' | 'op' | 'outcome'>;
  readonly #budgetWait: CellHistogram<'bucket' | 'outcome'>;

  constructor(options: MetricsOptions) {
    this.#tiers = options.tiers;
    this.#nodeId = options.nodeId;
    const registry = this.#registry;

    // cachegate's series.
    mirroredCounter(registry, 'cachegate_requests_total', 'Total requests served by cachegate', ['method', 'status'], (inc) => {
      for (const s of this.#requestSeries.values()) inc({ method: METHOD_LABELS[s.method] ?? 'OTHER', status: s.status }, s.cell.count);
    });
    mirroredCounter(registry, 'cachegate_auth_fail_total', 'Total authentication failures', ['method'], (inc) => {
      perMethod(this.#authFailsByMethod, METHOD_LABELS, inc);
    });
    mirroredCounter(registry, 'cachegate_cache_hit_total', 'Total cache hits', ['method'], (inc) => this.#cacheCounts(HIT, inc));
    mirroredCounter(registry, 'cachegate_cache_miss_total', 'Total cache misses', ['method'], (inc) => this.#cacheCounts(MISS, inc));
    mirroredCounter(registry, 'cachegate_upstream_ok_total', 'Total upstream successes', ['method'], (inc) => {
      perMethod(this.#upstreamOkByOp, STORE_OP_METHODS, inc);
    });
    mirroredCounter(registry, 'cachegate_upstream_err_total', 'Total upstream errors', ['method', 'error_kind'], (inc) => {
      this.#upstreamErrByOp.forEach((kinds, op) => {
        for (const [kind, n] of kinds) inc({ method: STORE_OP_METHODS[op] ?? 'OTHER', error_kind: kind }, n);
      });
    });
    this.#upstreamLatency = new CellHistogram({
      name: 'cachegate_upstream_latency_ms',
      help: 'Upstream request latency in milliseconds',
      labelNames: ['method'],
      buckets: UPSTREAM_LATENCY_BUCKETS_MS,
      registry,
    });

    // Conventional series, base units.
    this.#httpDuration = new CellHistogram({
      name: 'cachegate_http_request_duration_seconds',
      help: 'HTTP request duration in seconds, until the response is finished',
      labelNames: ['method', 'status', 'cache'],
      buckets: HTTP_DURATION_BUCKETS_S,
      registry,
    });
    this.#storeDuration = new CellHistogram({
      name: 'cachegate_store_request_duration_seconds',
      help: 'Store call duration in seconds, until the store answers',
      labelNames: ['bucket', 'op', 'outcome'],
      buckets: STORE_DURATION_BUCKETS_S,
      registry,
    });
    // A slow first byte on a miss that is the gateway's own doing: a fill waited for
    // max_fill_memory (core/fill-budget.ts). Only waits are observed, not fills that found room.
    this.#budgetWait = new CellHistogram({
      name: 'cachegate_fill_budget_wait_seconds',
      help: 'Time a fill a reader needed waited for room in max_fill_memory (outcome granted: it then started; uncached: the reader was served straight from the store)',
      labelNames: ['bucket', 'outcome'],
      buckets: STORE_DURATION_BUCKETS_S,
      registry,
    });
    tierGauge(registry, this.#tiers, this.#freeLabels, 'cachegate_cache_bytes', 'Bytes held by each cache tier', (t) => t.bytes);
    tierGauge(registry, this.#tiers, this.#freeLabels, 'cachegate_cache_entries', 'Entries held by each cache tier', (t) => t.entries);
    tierGauge(registry, this.#tiers, this.#freeLabels, 'cachegate_cache_max_bytes', 'Byte limit of each cache tier', (t) => t.maxBytes);
    mirroredCounter(registry, 'cachegate_cache_lookups_total', 'Cache tier lookups by result', ['tier', 'result'], (inc) => {
      for (const [tier, s] of this.#tierSeries) {
        inc({ tier, result: 'hit' }, s.hits);
        inc({ tier, result: 'miss' }, s.misses);
      }
    });
    mirroredCounter(registry, 'cachegate_cache_evictions_total', 'Entries evicted from each cache tier', ['tier'], (inc) => {
      for (const [tier, s] of this.#tierSeries) inc({ tier }, s.evictions);
    });
    mirroredCounter(registry, 'cachegate_cache_rejected_total', 'Objects a cache tier refused to store', ['tier', 'reason'], (inc) => {
      for (const [tier, s] of this.#tierSeries) for (const [reason, n] of s.rejected) inc({ tier, reason }, n);
    });
    mirroredCounter(registry, 'cachegate_coalesced_requests_total', 'Requests that waited on a fetch already in flight', ['bucket'], (inc) => {
      for (const [bucket, s] of this.#buckets) if (s.coalesced > 0) inc({ bucket }, s.coalesced);
    });
    mirroredCounter(registry, 'cachegate_fill_bytes_total', 'Bytes fetched from stores to answer cache misses', ['bucket'], (inc) => {
      for (const [bucket, s] of this.#buckets) if (s.fillBytes > 0) inc({ bucket }, s.fillBytes);
    });
    // Egress: store bytes per client byte = sum(store_bytes_fetched) / sum(served_bytes).
    mirroredCounter(registry, 'cachegate_store_bytes_fetched_total', 'Body bytes received from each store (slice fills and uncached reads)', ['bucket'], (inc) => {
      for (const [bucket, s] of this.#buckets) if (s.storeBytes > 0) inc({ bucket }, s.storeBytes);
    });
    mirroredCounter(registry, 'cachegate_served_bytes_total', 'Body bytes sent to clients, by cache status', ['cache'], (inc) => {
      for (let c = 0; c < CACHE_LABELS.length; c++) if (this.#servedBytes[c]! > 0) inc({ cache: CACHE_LABELS[c]! }, this.#servedBytes[c]!);
    });
    mirroredCounter(registry, 'cachegate_disk_errors_total', 'Disk cache tier I/O errors', ['op'], (inc) => {
      for (const [op, n] of this.#diskErrors) inc({ op }, n);
    });
    // Store protection (core/store-guard.ts).
    mirroredCounter(registry, 'cachegate_store_retries_total', 'Store reads tried again after a transient failure', ['bucket'], (inc) => {
      for (const [bucket, s] of this.#buckets) if (s.retries > 0) inc({ bucket }, s.retries);
    });
    mirroredCounter(registry, 'cachegate_store_hedges_total', 'Second GETs sent after the hedging latency quantile', ['bucket'], (inc) => {
      for (const [bucket, s] of this.#buckets) if (s.hedges > 0) inc({ bucket }, s.hedges);
    });
    mirroredCounter(registry, 'cachegate_store_fail_fast_total', 'Store calls refused without asking the store (503)', ['bucket', 'reason'], (inc) => {
      for (const [bucket, s] of this.#buckets) {
        if (s.failFastBreaker > 0) inc({ bucket, reason: 'breaker' }, s.failFastBreaker);
        if (s.failFastQueue > 0) inc({ bucket, reason: 'queue' }, s.failFastQueue);
      }
    });
    // Freshness (core/freshness.ts): stale_if_error and stale_while_revalidate.
    mirroredCounter(registry, 'cachegate_stale_served_total', 'Stale copies served (reason error: the store failed; revalidating: stale_while_revalidate)', ['bucket', 'reason'], (inc) => {
      for (const [bucket, s] of this.#buckets) {
        if (s.staleOnError > 0) inc({ bucket, reason: 'error' }, s.staleOnError);
        if (s.staleRevalidating > 0) inc({ bucket, reason: 'revalidating' }, s.staleRevalidating);
      }
    });
    const buckets = this.#buckets;
    new Gauge<'bucket'>({
      name: 'cachegate_store_breaker_state',
      help: 'Circuit breaker of each store: 0 closed, 1 half open (one probe), 2 open (failing fast)',
      labelNames: ['bucket'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [bucket, s] of buckets) this.set({ bucket }, s.breaker);
      },
    });
    const queues = options.storeQueues;
    new Gauge<'bucket'>({
      name: 'cachegate_store_queue_depth',
      help: 'Store calls waiting for a slot under store_max_concurrent',
      labelNames: ['bucket'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [bucket, depth] of queues?.() ?? []) this.set({ bucket }, depth);
      },
    });

    if (options.collectDefault !== false) collectDefaultMetrics({ register: registry });
  }

  /** The Content-Type of `metricsText()`. */
  get contentType(): string {
    return this.#registry.contentType;
  }

  /** The Prometheus text exposition of every series. */
  metricsText(): Promise<string> {
    return this.#registry.metrics();
  }

  /** Count a finished HTTP request. Hot path: no allocation once its label set has been seen. */
  observeRequest(r: RequestObservation): void {
    const method = methodIndex(r.method);
    const status = r.status >= 100 && r.status <= 599 ? r.status | 0 : 0;
    const cache = r.cache === 'hit' ? HIT : r.cache === 'miss' ? MISS : NONE;
    const key = (method * 1000 + status) * 3 + cache;
    const series = this.#requestSeries.get(key) ?? this.#newRequestSeries(key, method, status, cache);
    observeCell(series.cell, this.#httpDuration.bounds, r.durationSec);
    this.#requests++;
    if (r.bytes) this.#servedBytes[cache]! += r.bytes;
    if (cache === HIT) this.#hits++;
    else if (cache === MISS) this.#misses++;
  }

  /** Count a request refused for missing or bad credentials. */
  authFail(method: string): void {
    this.#authFailsByMethod[methodIndex(method)]! += 1;
    this.#authFails++;
  }

  /** Count a disk tier I/O error; `op` is what it was doing (`write`, `read`, `scan`, `evict`). */
  diskError(op: string): void {
    const label = this.#freeLabels.get(op);
    this.#diskErrors.set(label, (this.#diskErrors.get(label) ?? 0) + 1);
  }

  /** Listener for the object service's events. */
  onCoreEvent(e: CoreEvent): void {
    const bucket = this.#bucket(e.storeId);
    switch (e.type) {
      case 'store-op': {
        const op = STORE_OPS.indexOf(e.op);
        // A key refused for the client's reasons is neither an upstream success nor a failure.
        if (op < 0 || e.outcome === 'rejected') return;
        const outcome = e.outcome === 'ok' ? 0 : e.outcome === 'not_found' ? 1 : 2;
        const storeCell = (bucket.ops[op * 3 + outcome] ??= this.#storeDuration.cell({
          bucket: e.storeId,
          op: e.op,
          outcome: OUTCOMES[outcome] ?? OTHER_LABEL,
        }));
        observeCell(storeCell, this.#storeDuration.bounds, e.durationMs / 1000);
        const latency = (this.#upstreamLatencyByOp[op] ??= this.#upstreamLatency.cell({ method: STORE_OP_METHODS[op] ?? 'OTHER' }));
        observeCell(latency, this.#upstreamLatency.bounds, e.durationMs);
        if (outcome === 0) {
          this.#upstreamOkByOp[op]! += 1;
          this.#upstreamOk++;
        } else {
          // As in cachegate, "not found" from the store counts as an upstream error of that kind.
          const kind = outcome === 1 ? 'not_found' : this.#freeLabels.get(e.errorKind ?? OTHER_LABEL);
          const kinds = this.#upstreamErrByOp[op]!;
          kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
          this.#upstreamErr++;
        }
        return;
      }
      case 'coalesced':
        bucket.coalesced++;
        return;
      case 'fill-done':
        bucket.fillBytes += e.bytes;
        return;
      case 'fill-budget-wait': {
        const outcome = e.granted ? 0 : 1;
        const cell = (bucket.budgetWaits[outcome] ??= this.#budgetWait.cell({ bucket: e.storeId, outcome: e.granted ? 'granted' : 'uncached' }));
        observeCell(cell, this.#budgetWait.bounds, e.waitedMs / 1000);
        return;
      }
      case 'store-bytes':
        bucket.storeBytes += e.bytes;
        return;
      case 'store-retry':
        bucket.retries++;
        return;
      case 'store-hedge':
        bucket.hedges++;
        return;
      case 'store-fail-fast':
        if (e.reason === 'breaker') bucket.failFastBreaker++;
        else bucket.failFastQueue++;
        return;
      case 'breaker':
        bucket.breaker = BREAKER_STATE_VALUE[e.state];
        return;
      case 'stale-served':
        if (e.reason === 'error') bucket.staleOnError++;
        else bucket.staleRevalidating++;
        return;
    }
  }

  /** Listener for the cache tiers' events. `stored` needs no series: the byte gauges show it. */
  onTierEvent(e: TierEvent): void {
    const tier = this.#tier(e.tier);
    switch (e.type) {
      case 'hit':
        tier.hits++;
        return;
      case 'miss':
        tier.misses++;
        return;
      case 'evicted':
        tier.evictions++;
        return;
      case 'rejected': {
        const reason = this.#freeLabels.get(e.reason);
        tier.rejected.set(reason, (tier.rejected.get(reason) ?? 0) + 1);
        return;
      }
      case 'stored':
        return;
    }
  }

  /** cachegate's /stats JSON: running totals, and the tiers' current sizes. */
  stats(): GatewayStats {
    let entries = 0;
    let bytes = 0;
    const tiers: Record<string, TierStatsJson> = {};
    for (const t of this.#tiers()) {
      entries += t.entries;
      bytes += t.bytes;
      tiers[t.name] = { entries: t.entries, bytes: t.bytes, max_bytes: t.maxBytes };
    }
    return {
      ...(this.#nodeId !== undefined ? { node_id: this.#nodeId } : {}),
      requests_total: this.#requests,
      auth_fail_total: this.#authFails,
      cache_hit_total: this.#hits,
      cache_miss_total: this.#misses,
      upstream_ok_total: this.#upstreamOk,
      upstream_err_total: this.#upstreamErr,
      cache_entries: entries,
      cache_bytes: bytes,
      cache: { entries, bytes },
      tiers,
    };
  }

  #newRequestSeries(key: number, method: number, status: number, cache: number): RequestSeries {
    const statusLabel = status === 0 ? OTHER_LABEL : String(status);
    const cell = this.#httpDuration.cell({
      method: METHOD_LABELS[method] ?? 'OTHER',
      status: statusLabel,
      cache: CACHE_LABELS[cache] ?? 'none',
    });
    const series: RequestSeries = { cell, method, status: statusLabel, cache };
    this.#requestSeries.set(key, series);
    return series;
  }

  #cacheCounts(cache: number, inc: Inc<'method'>): void {
    const byMethod = new Float64Array(METHOD_LABELS.length);
    for (const s of this.#requestSeries.values()) if (s.cache === cache) byMethod[s.method]! += s.cell.count;
    perMethod(byMethod, METHOD_LABELS, inc);
  }

  #bucket(storeId: string): BucketSeries {
    let series = this.#buckets.get(storeId);
    if (!series) {
      series = { coalesced: 0, fillBytes: 0, storeBytes: 0, retries: 0, hedges: 0, failFastBreaker: 0, failFastQueue: 0, staleOnError: 0, staleRevalidating: 0, breaker: 0, ops: [], budgetWaits: [] };
      this.#buckets.set(storeId, series);
    }
    return series;
  }

  #tier(name: string): TierSeries {
    const label = this.#freeLabels.get(name);
    let series = this.#tierSeries.get(label);
    if (!series) {
      series = { hits: 0, misses: 0, evictions: 0, rejected: new Map() };
      this.#tierSeries.set(label, series);
    }
    return series;
  }
}

/** Upper-case known methods to their index; anything else is OTHER. */
function methodIndex(method: string): number {
  switch (method) {
    case 'GET':
      return 0;
    case 'HEAD':
      return 1;
    case 'PUT':
      return 2;
    case 'POST':
      return 3;
    case 'DELETE':
      return 4;
    case 'OPTIONS':
      return 5;
  }
  const upper = method.toUpperCase();
  return upper === method ? OTHER_METHOD : methodIndex(upper);
}

/**
 * Free-form label values from our own code (error kinds, disk ops, tiers, reasons) pass when they
 * look like identifiers, up to a fixed number of distinct values; anything else (a path, a message)
 * becomes `other`, so a caller's mistake cannot leak a key or grow the series without bound.
 */
class FreeLabels {
  static readonly #SAFE = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;
  readonly #seen = new Map<string, string>();
  #accepted = 0;

  get(raw: string): string {
    const known = this.#seen.get(raw);
    if (known !== undefined) return known;
    let label = OTHER_LABEL;
    if (this.#accepted < MAX_FREE_LABEL_VALUES && FreeLabels.#SAFE.test(raw)) {
      label = raw;
      this.#accepted++;
    }
    if (this.#seen.size < MAX_FREE_LABEL_VALUES * 4) this.#seen.set(raw, label);
    return label;
  }
}

/** Report each non-zero count of a per-method array under its method label. */
function perMethod(counts: Float64Array, methods: readonly string[], inc: Inc<'method'>): void {
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i] ?? 0;
    if (n > 0) inc({ method: methods[i] ?? 'OTHER' }, n);
  }
}

/** A gauge per tier, read from `tiers()` at scrape time. */
function tierGauge(
  registry: Registry,
  tiers: () => TierSnapshot[],
  labels: FreeLabels,
  name: string,
  help: string,
  value: (t: TierSnapshot) => number,
): Gauge<'tier'> {
  return new Gauge<'tier'>({
    name,
    help,
    labelNames: ['tier'],
    registers: [registry],
    collect() {
      this.reset();
      for (const t of tiers()) this.set({ tier: labels.get(t.name) }, value(t));
    },
  });
}
