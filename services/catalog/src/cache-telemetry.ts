import type { CacheEvent, SuppressedOperation } from "@flashsale/cache";
import { type Logger, reportSuppressedErrors } from "@flashsale/telemetry";
import { Counter, type Registry } from "prom-client";

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
