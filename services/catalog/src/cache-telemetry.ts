import type { CacheEvent, SuppressedOperation } from "@flashsale/cache";
import { type Logger, reportSuppressedErrors } from "@flashsale/telemetry";
import { Counter, Gauge, type Registry } from "prom-client";

/**
 * The product cache's hooks as the catalog wires them: every cache event counted in
 * `catalog_cache_events_total{event}`, every failure the cache swallows on purpose logged and
 * counted in `catalog_cache_suppressed_errors_total{operation}`.
 */
export function cacheTelemetry(
  metrics: Registry,
  logger: Logger,
): { onEvent(event: CacheEvent): void; onSuppressedError(operation: SuppressedOperation, err: unknown): void } {
  const cacheEvents = new Counter({
    name: "catalog_cache_events_total",
    help: "Product cache events by kind (hit, miss, fill, fill_refused, lease_wait, coalesced, bypass, ...)",
    labelNames: ["event"],
    registers: [metrics],
  });
  // Bound children: the L1 hit path is hot, and label lookup per increment is not free.
  const eventCounters = new Map<CacheEvent, { inc(): void }>();
  return {
    onEvent: (event) => {
      let c = eventCounters.get(event);
      if (!c) {
        c = cacheEvents.labels(event);
        eventCounters.set(event, c);
      }
      c.inc();
    },
    onSuppressedError: reportSuppressedErrors({
      registry: metrics,
      logger,
      metric: "catalog_cache_suppressed_errors_total",
      component: "product cache",
    }),
  };
}

/**
 * The staleness bound on /metrics: `catalog_cache_watermark_age_seconds` (the monitor's estimate;
 * -1 while no watermark was ever read) and `catalog_cache_revalidating` (1 while every served key is
 * checked against Postgres); L1 canary failures in `catalog_l1_canary_dead_total`.
 */
export function freshnessTelemetry(
  metrics: Registry,
  monitor: { readonly ageMs: number | null; readonly trusted: boolean },
): { onCanary(): void } {
  new Gauge({
    name: "catalog_cache_watermark_age_seconds",
    help: "Age of the invalidation watermark this catalog last saw, aged on its monotonic clock (-1: never read)",
    registers: [metrics],
    collect() {
      const age = monitor.ageMs;
      this.set(age === null ? -1 : age / 1000);
    },
  });
  new Gauge({
    name: "catalog_cache_revalidating",
    help: "1 while the watermark is older than the staleness bound (every served key revalidated), else 0",
    registers: [metrics],
    collect() {
      this.set(monitor.trusted ? 0 : 1);
    },
  });
  const dead = new Counter({
    name: "catalog_l1_canary_dead_total",
    help: "Times the L1 invalidation canary was not heard in time (L1 switched off, tracking reconnected)",
    registers: [metrics],
  });
  return { onCanary: () => dead.inc() };
}
