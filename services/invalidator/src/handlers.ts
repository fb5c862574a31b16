import { type RedisClient, StockGate } from "@flashsale/cache";
import { invalidateProduct } from "@flashsale/product-cache";
import { type Logger, spanContextFromTraceparent, trace } from "@flashsale/telemetry";
import type { InventoryChange, ProductChange } from "./change-event.ts";
import type { InvalidatorMetrics } from "./metrics.ts";

const MAX_BACKOFF_MS = 5_000;
const tracer = trace.getTracer("flashsale-invalidator");

/** Called while a write is being retried (the Kafka consumer passes its heartbeat: a long outage must not cost the group membership). */
export type KeepAlive = () => Promise<void>;

export interface ChangeHandlers {
  /** Evicts the product's cache entry and fences older fills; returns once Redis acknowledged. */
  applyProductChange(change: ProductChange, keepAlive: KeepAlive): Promise<void>;
  /** Syncs the stock gate with Postgres' `available`; returns once Redis acknowledged. */
  applyInventoryChange(change: InventoryChange, keepAlive: KeepAlive): Promise<void>;
}

/**
 * What a change event does to Redis, apart from how it arrives (consumer.ts): a products change
 * evicts + fences the product's cache key (docs/architecture.md#invalidation), an inventory change
 * syncs the checkout's stock gate. Each returns only once Redis acknowledged the write, retrying
 * with backoff while Redis is down (nothing is dropped): the caller commits the offset after.
 */
export function createChangeHandlers(opts: {
  redis: RedisClient;
  schemaVersion: number;
  fenceTtlMs: number;
  logger: Logger;
  metrics: InvalidatorMetrics;
  /** True once shutting down: a retry then gives up (the offset stays uncommitted, the event is replayed). */
  isStopping: () => boolean;
}): ChangeHandlers {
  const gate = new StockGate(opts.redis);
  const untilAcknowledged = (write: () => Promise<void>, keepAlive: KeepAlive, what: object) =>
    untilRedisAcknowledges(write, {
      keepAlive,
      isStopping: opts.isStopping,
      onRetry: (err, backoffMs) => {
        opts.metrics.redisRetries.inc();
        opts.logger.warn({ err: err.message, ...what, backoff: backoffMs }, "redis write failed, retrying");
      },
    });

  return {
    async applyProductChange(change, keepAlive) {
      const target = { schemaVersion: opts.schemaVersion, id: change.id, version: change.version, fenceTtlMs: opts.fenceTtlMs };
      // The span links to the trace of the write that caused this change (when it was traced).
      const writer = change.traceparent ? spanContextFromTraceparent(change.traceparent) : undefined;
      await tracer.startActiveSpan(
        "invalidate product",
        {
          links: writer ? [{ context: writer }] : [],
          attributes: { "flashsale.product_id": change.id, "flashsale.version": change.version },
        },
        async (span) => {
          try {
            await untilAcknowledged(() => invalidateProduct(opts.redis, target), keepAlive, { productId: change.id });
          } finally {
            span.end();
          }
        },
      );
      opts.metrics.lag.observe(Math.max(0, Date.now() - change.committedAtMs) / 1000);
      opts.metrics.events.inc({ outcome: "evicted" });
    },

    async applyInventoryChange({ productId, available }, keepAlive) {
      await untilAcknowledged(() => (available === null ? gate.forget(productId) : gate.sync(productId, available)), keepAlive, {
        productId,
      });
      opts.metrics.events.inc({ outcome: "stock_synced" });
    },
  };
}

/**
 * Runs `write` until it succeeds, backing off 50 ms doubling to 5 s, calling `keepAlive` between
 * attempts. Throws only once `isStopping()` is true (the event is then replayed after a restart).
 */
export async function untilRedisAcknowledges(
  write: () => Promise<void>,
  o: { keepAlive: KeepAlive; isStopping: () => boolean; onRetry(err: Error, backoffMs: number): void },
): Promise<void> {
  let backoff = 50;
  for (;;) {
    try {
      await write();
      return;
    } catch (err) {
      if (o.isStopping()) throw err;
      o.onRetry(err as Error, backoff);
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      await o.keepAlive();
    }
  }
}
