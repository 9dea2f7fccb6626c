import { describe, expect, it } from 'vitest';
import { getMetricsFromIterator, type PromData, type PromHistogramData, type PromMetrics } from 'prom2javascript';
import { createMetrics, UPSTREAM_LATENCY_BUCKETS_MS, type Metrics, type TierSnapshot } from '../../src/metrics/metrics.js';

/** Parse the exposition with a real text-format parser (it also checks each histogram's count = +Inf bucket). */
async function scrape(m: Metrics): Promise<PromMetrics> {
  const lines = (await m.metricsText()).split('\n');
  // prom-client writes NaN as `Nan` (the event-loop lag gauges before their first sample).
  // Prometheus reads that; this parser does not. No cachegate series may ever be NaN.
  const nan = lines.filter((line) => / Nan$/.test(line));
  expect(nan.filter((line) => line.startsWith('cachegate_'))).toEqual([]);
  return getMetricsFromIterator(lines.filter((line) => !nan.includes(line))[Symbol.iterator]());
}

function family(metrics: PromMetrics, name: string, type: string) {
  const f = metrics[name];
  expect(f, `${name} is exposed`).toBeDefined();
  expect(f?.type).toBe(type);
  return f!;
}

/** Every sample of a counter or gauge, as `label=value,…` → value. */
function samples(metrics: PromMetrics, name: string, type: 'counter' | 'gauge'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of family(metrics, name, type).data as PromData[]) out[labelKey(d.labels)] = d.value;
  return out;
}

function histograms(metrics: PromMetrics, name: string): Record<string, PromHistogramData> {
  const out: Record<string, PromHistogramData> = {};
  for (const d of family(metrics, name, 'histogram').data as PromHistogramData[]) out[labelKey(d.labels)] = d;
  return out;
}

function labelKey(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

const noTiers = (): TierSnapshot[] => [];

describe('createMetrics', () => {
  it('keeps cachegate series by name and label, with exact counts', async () => {
    const m = createMetrics({ tiers: noTiers, collectDefault: false });
    for (let i = 0; i < 3; i++) m.observeRequest({ method: 'GET', status: 200, cache: 'hit', durationSec: 0.0004 });
    m.observeRequest({ method: 'HEAD', status: 200, cache: 'hit', durationSec: 0.0004 });
    m.observeRequest({ method: 'GET', status: 200, cache: 'miss', durationSec: 0.03 });
    m.observeRequest({ method: 'GET', status: 200, cache: 'miss', durationSec: 0.04 });
    m.observeRequest({ method: 'get', status: 404, cache: 'miss', durationSec: 0.01 });
    m.observeRequest({ method: 'PUT', status: 201, cache: 'none', durationSec: 0.2 });
    m.observeRequest({ method: 'PATCH', status: 405, cache: 'none', durationSec: 0.0001 });
    m.authFail('GET');
    m.authFail('GET');
    m.authFail('BREW');

    m.onCoreEvent({ type: 'store-op', storeId: 'photos', op: 'get', outcome: 'ok', durationMs: 12 });
    m.onCoreEvent({ type: 'store-op', storeId: 'photos', op: 'get', outcome: 'ok', durationMs: 0.5 });
    m.onCoreEvent({ type: 'store-op', storeId: 'photos', op: 'head', outcome: 'not_found', durationMs: 3 });
    m.onCoreEvent({ type: 'store-op', storeId: 'photos', op: 'get', outcome: 'error', errorKind: 'timeout', durationMs: 6000 });
    m.onCoreEvent({ type: 'store-op', storeId: 'docs', op: 'put', outcome: 'ok', durationMs: 30 });
    m.onCoreEvent({ type: 'store-op', storeId: 'docs', op: 'delete', outcome: 'error', errorKind: 'access_denied', durationMs: 5 });

    const p = await scrape(m);
    expect(samples(p, 'cachegate_requests_total', 'counter')).toEqual({
      'method=GET,status=200': 5,
      'method=HEAD,status=200': 1,
      'method=GET,status=404': 1,
      'method=PUT,status=201': 1,
      'method=OTHER,status=405': 1,
    });
    expect(samples(p, 'cachegate_auth_fail_total', 'counter')).toEqual({ 'method=GET': 2, 'method=OTHER': 1 });
    expect(samples(p, 'cachegate_cache_hit_total', 'counter')).toEqual({ 'method=GET': 3, 'method=HEAD': 1 });
    expect(samples(p, 'cachegate_cache_miss_total', 'counter')).toEqual({ 'method=GET': 3 });
    expect(samples(p, 'cachegate_upstream_ok_total', 'counter')).toEqual({ 'method=GET': 2, 'method=PUT': 1 });
    expect(samples(p, 'cachegate_upstream_err_total', 'counter')).toEqual({
      'error_kind=not_found,method=HEAD': 1,
      'error_kind=timeout,method=GET': 1,
      'error_kind=access_denied,method=DELETE': 1,
    });

    const latency = histograms(p, 'cachegate_upstream_latency_ms');
    expect(Object.keys(latency).sort()).toEqual(['method=DELETE', 'method=GET', 'method=HEAD', 'method=PUT']);
    const get = latency['method=GET']!;
    expect(Object.keys(get.buckets)).toEqual([...UPSTREAM_LATENCY_BUCKETS_MS.map(String), '+Inf']);
    expect(get.count).toBe(3);
    expect(get.sum).toBe(6012.5);
    expect(get.buckets['1']).toBe(1);
    expect(get.buckets['10']).toBe(1);
    expect(get.buckets['25']).toBe(2);
    expect(get.buckets['5000']).toBe(2);
    expect(get.buckets['+Inf']).toBe(3);
    expect(latency['method=HEAD']?.count).toBe(1);
    expect(latency['method=HEAD']?.buckets['5']).toBe(1);
  });

  it('exposes conventional series in seconds and bytes', async () => {
    const m = createMetrics({ tiers: noTiers, collectDefault: false });
    m.observeRequest({ method: 'GET', status: 200, cache: 'hit', durationSec: 0.001 });
    m.observeRequest({ method: 'GET', status: 200, cache: 'hit', durationSec: 0.002 });
    m.observeRequest({ method: 'GET', status: 200, cache: 'miss', durationSec: 120 });
    m.observeRequest({ method: 'OPTIONS', status: 204, cache: 'none', durationSec: 0.0001 });
    m.observeRequest({ method: 'GET', status: 0, cache: 'none', durationSec: 0.0001 });

    m.onCoreEvent({ type: 'store-op', storeId: 'photos', op: 'get', outcome: 'ok', durationMs: 40 });
    m.onCoreEvent({ type: 'store-op', storeId: 'photos', op: 'get', outcome: 'ok', durationMs: 60 });
    m.onCoreEvent({ type: 'store-op', storeId: 'photos', op: 'head', outcome: 'not_found', durationMs: 2 });
    m.onCoreEvent({ type: 'coalesced', storeId: 'photos' });
    m.onCoreEvent({ type: 'coalesced', storeId: 'photos' });
    m.onCoreEvent({ type: 'coalesced', storeId: 'docs' });
    m.onCoreEvent({ type: 'fill-done', storeId: 'photos', bytes: 1000, cached: true });
    m.onCoreEvent({ type: 'fill-done', storeId: 'photos', bytes: 24, cached: false });
    m.onCoreEvent({ type: 'fill-budget-wait', storeId: 'photos', waitedMs: 40, granted: true });
    m.onCoreEvent({ type: 'fill-budget-wait', storeId: 'photos', waitedMs: 3, granted: true });
    m.onCoreEvent({ type: 'fill-budget-wait', storeId: 'docs', waitedMs: 30_000, granted: false });

    m.onTierEvent({ type: 'hit', tier: 'memory' });
    m.onTierEvent({ type: 'hit', tier: 'memory' });
    m.onTierEvent({ type: 'miss', tier: 'memory' });
    m.onTierEvent({ type: 'miss', tier: 'disk' });
    m.onTierEvent({ type: 'stored', tier: 'memory', bytes: 10 });
    m.onTierEvent({ type: 'evicted', tier: 'memory', bytes: 10 });
    m.onTierEvent({ type: 'evicted', tier: 'memory', bytes: 20 });
    m.onTierEvent({ type: 'rejected', tier: 'memory', bytes: 1 << 30, reason: 'too_large' });
    m.diskError('write');
    m.diskError('write');
    m.diskError('scan');

    const p = await scrape(m);
    const http = histograms(p, 'cachegate_http_request_duration_seconds');
    expect(Object.keys(http).sort()).toEqual([
      'cache=hit,method=GET,status=200',
      'cache=miss,method=GET,status=200',
      'cache=none,method=GET,status=other',
      'cache=none,method=OPTIONS,status=204',
    ]);
    const hits = http['cache=hit,method=GET,status=200']!;
    expect(hits.count).toBe(2);
    expect(hits.sum).toBeCloseTo(0.003, 12);
    expect(hits.buckets['0.0005']).toBe(0);
    expect(hits.buckets['0.001']).toBe(1); // le is inclusive
    expect(hits.buckets['0.0025']).toBe(2);
    const slow = http['cache=miss,method=GET,status=200']!;
    expect(slow.buckets['60']).toBe(0);
    expect(slow.buckets['+Inf']).toBe(1);

    const store = histograms(p, 'cachegate_store_request_duration_seconds');
    expect(Object.keys(store).sort()).toEqual(['bucket=photos,op=get,outcome=ok', 'bucket=photos,op=head,outcome=not_found']);
    expect(store['bucket=photos,op=get,outcome=ok']).toMatchObject({ count: 2, sum: 0.1 });
    expect(store['bucket=photos,op=get,outcome=ok']?.buckets['0.05']).toBe(1);
    expect(store['bucket=photos,op=get,outcome=ok']?.buckets['0.1']).toBe(2);

    const waits = histograms(p, 'cachegate_fill_budget_wait_seconds');
    expect(Object.keys(waits).sort()).toEqual(['bucket=docs,outcome=uncached', 'bucket=photos,outcome=granted']);
    expect(waits['bucket=photos,outcome=granted']?.count).toBe(2);
    expect(waits['bucket=photos,outcome=granted']?.sum).toBeCloseTo(0.043, 12);
    expect(waits['bucket=photos,outcome=granted']?.buckets['0.005']).toBe(1);
    expect(waits['bucket=photos,outcome=granted']?.buckets['0.05']).toBe(2);
    expect(waits['bucket=docs,outcome=uncached']).toMatchObject({ count: 1, sum: 30 });

    expect(samples(p, 'cachegate_coalesced_requests_total', 'counter')).toEqual({ 'bucket=photos': 2, 'bucket=docs': 1 });
    expect(samples(p, 'cachegate_fill_bytes_total', 'counter')).toEqual({ 'bucket=photos': 1024 });
    expect(samples(p, 'cachegate_cache_evictions_total', 'counter')).toEqual({ 'tier=memory': 2, 'tier=disk': 0 });
    expect(samples(p, 'cachegate_cache_lookups_total', 'counter')).toEqual({
      'result=hit,tier=memory': 2,
      'result=miss,tier=memory': 1,
      'result=hit,tier=disk': 0,
      'result=miss,tier=disk': 1,
    });
    expect(samples(p, 'cachegate_cache_rejected_total', 'counter')).toEqual({ 'reason=too_large,tier=memory': 1 });
    expect(samples(p, 'cachegate_disk_errors_total', 'counter')).toEqual({ 'op=write': 2, 'op=scan': 1 });
  });

  it('reads the tiers at scrape time', async () => {
    const tiers: TierSnapshot[] = [{ name: 'memory', entries: 1, bytes: 100, maxBytes: 1000 }];
    const m = createMetrics({ tiers: () => tiers, collectDefault: false });
    let p = await scrape(m);
    expect(samples(p, 'cachegate_cache_bytes', 'gauge')).toEqual({ 'tier=memory': 100 });
    expect(samples(p, 'cachegate_cache_entries', 'gauge')).toEqual({ 'tier=memory': 1 });
    expect(samples(p, 'cachegate_cache_max_bytes', 'gauge')).toEqual({ 'tier=memory': 1000 });

    tiers[0] = { name: 'memory', entries: 3, bytes: 700, maxBytes: 1000 };
    tiers.push({ name: 'disk', entries: 9, bytes: 9000, maxBytes: 1e9 });
    p = await scrape(m);
    expect(samples(p, 'cachegate_cache_bytes', 'gauge')).toEqual({ 'tier=memory': 700, 'tier=disk': 9000 });
    expect(samples(p, 'cachegate_cache_entries', 'gauge')).toEqual({ 'tier=memory': 3, 'tier=disk': 9 });
    expect(samples(p, 'cachegate_cache_max_bytes', 'gauge')).toEqual({ 'tier=memory': 1000, 'tier=disk': 1e9 });
  });

  it('answers /stats with running totals and current tier sizes', () => {
    const tiers: TierSnapshot[] = [{ name: 'memory', entries: 2, bytes: 300, maxBytes: 1000 }];
    const m = createMetrics({ tiers: () => tiers, collectDefault: false });
    m.observeRequest({ method: 'GET', status: 200, cache: 'hit', durationSec: 0.001 });
    m.observeRequest({ method: 'HEAD', status: 200, cache: 'miss', durationSec: 0.001 });
    m.observeRequest({ method: 'GET', status: 401, cache: 'none', durationSec: 0.001 });
    m.authFail('GET');
    m.onCoreEvent({ type: 'store-op', storeId: 'b', op: 'head', outcome: 'ok', durationMs: 1 });
    m.onCoreEvent({ type: 'store-op', storeId: 'b', op: 'get', outcome: 'not_found', durationMs: 1 });
    m.onCoreEvent({ type: 'store-op', storeId: 'b', op: 'get', outcome: 'error', errorKind: 'network', durationMs: 1 });

    expect(m.stats()).toEqual({
      requests_total: 3,
      auth_fail_total: 1,
      cache_hit_total: 1,
      cache_miss_total: 1,
      upstream_ok_total: 1,
      upstream_err_total: 2,
      cache_entries: 2,
      cache_bytes: 300,
      cache: { entries: 2, bytes: 300 },
      tiers: { memory: { entries: 2, bytes: 300, max_bytes: 1000 } },
    });

    tiers.push({ name: 'disk', entries: 5, bytes: 5000, maxBytes: 10_000 });
    const stats = m.stats();
    expect(stats.cache).toEqual({ entries: 7, bytes: 5300 });
    expect(stats.tiers).toEqual({
      memory: { entries: 2, bytes: 300, max_bytes: 1000 },
      disk: { entries: 5, bytes: 5000, max_bytes: 10_000 },
    });
  });

  it('never lets a key-like or unbounded value become a label', async () => {
    const key = 'photos/2024/cat.jpg';
    const m = createMetrics({ tiers: () => [{ name: key, entries: 1, bytes: 1, maxBytes: 1 }], collectDefault: false });
    m.observeRequest({ method: key, status: 200, cache: 'hit', durationSec: 0.001 });
    m.authFail(key);
    m.onCoreEvent({ type: 'store-op', storeId: 'photos', op: 'get', outcome: 'error', errorKind: key, durationMs: 1 });
    m.onTierEvent({ type: 'evicted', tier: key, bytes: 1 });
    m.onTierEvent({ type: 'rejected', tier: 'memory', bytes: 1, reason: `could not store ${key}` });
    m.diskError(`/var/cache/cachegate/${key}`);
    for (let i = 0; i < 500; i++) {
      m.observeRequest({ method: `M${i}`, status: 200, cache: 'none', durationSec: 0.001 });
      m.onCoreEvent({ type: 'store-op', storeId: 'photos', op: 'get', outcome: 'error', errorKind: `kind_${i}`, durationMs: 1 });
    }

    const text = await m.metricsText();
    expect(text).not.toContain('cat.jpg');
    expect(text).not.toContain('2024');
    const p = await scrape(m);
    expect(samples(p, 'cachegate_auth_fail_total', 'counter')).toEqual({ 'method=OTHER': 1 });
    expect(samples(p, 'cachegate_disk_errors_total', 'counter')).toEqual({ 'op=other': 1 });
    expect(samples(p, 'cachegate_cache_rejected_total', 'counter')).toEqual({ 'reason=other,tier=memory': 1 });
    expect(samples(p, 'cachegate_cache_bytes', 'gauge')).toEqual({ 'tier=other': 1 });
    expect(Object.keys(samples(p, 'cachegate_requests_total', 'counter'))).toEqual(['method=OTHER,status=200']);
    // A bounded number of error kinds, then everything else is `other`.
    const kinds = Object.keys(samples(p, 'cachegate_upstream_err_total', 'counter'));
    expect(kinds.length).toBeLessThanOrEqual(33);
    expect(kinds).toContain('error_kind=other,method=GET');
  });

  it('adds the default process metrics unless told not to', async () => {
    const withDefault = await scrape(createMetrics({ tiers: noTiers }));
    expect(withDefault['process_cpu_user_seconds_total']?.type).toBe('counter');
    expect(withDefault['nodejs_heap_size_used_bytes']?.type).toBe('gauge');
    expect(withDefault['process_resident_memory_bytes']).toBeDefined();

    const without = await scrape(createMetrics({ tiers: noTiers, collectDefault: false }));
    expect(Object.keys(without).filter((n) => !n.startsWith('cachegate_'))).toEqual([]);
  });

  it('gives every instance its own registry and counts', async () => {
    const a = createMetrics({ tiers: noTiers });
    const b = createMetrics({ tiers: noTiers });
    a.observeRequest({ method: 'GET', status: 200, cache: 'hit', durationSec: 0.001 });
    a.onCoreEvent({ type: 'coalesced', storeId: 'photos' });

    const pa = await scrape(a);
    const pb = await scrape(b);
    expect(samples(pa, 'cachegate_requests_total', 'counter')).toEqual({ 'method=GET,status=200': 1 });
    expect(samples(pb, 'cachegate_requests_total', 'counter')).toEqual({});
    expect(samples(pb, 'cachegate_coalesced_requests_total', 'counter')).toEqual({});
    expect(a.stats().requests_total).toBe(1);
    expect(b.stats().requests_total).toBe(0);
    expect(pb['process_cpu_user_seconds_total']).toBeDefined();
  });

  it('gives the same answer on every scrape', async () => {
    const m = createMetrics({ tiers: noTiers, collectDefault: false });
    m.observeRequest({ method: 'GET', status: 200, cache: 'hit', durationSec: 0.001 });
    m.onCoreEvent({ type: 'fill-done', storeId: 'photos', bytes: 10, cached: true });
    const first = await m.metricsText();
    expect(await m.metricsText()).toBe(first);
    m.observeRequest({ method: 'GET', status: 200, cache: 'hit', durationSec: 0.001 });
    const p = await scrape(m);
    expect(samples(p, 'cachegate_requests_total', 'counter')).toEqual({ 'method=GET,status=200': 2 });
    expect(samples(p, 'cachegate_fill_bytes_total', 'counter')).toEqual({ 'bucket=photos': 10 });
    expect(m.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
  });
});
