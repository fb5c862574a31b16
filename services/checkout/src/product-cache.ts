import type { RedisClient } from "@flashsale/cache";
import type { CheckoutConfig } from "@flashsale/config";
import { createProductCache } from "@flashsale/product-cache";
import { type Logger, reportSuppressedErrors } from "@flashsale/telemetry";
import type { Registry } from "prom-client";

/**
 * The checkout's product cache (display prices only). Same keys as the catalog's, so the
 * invalidator evicts them for both, and the same TTL policy: CACHE_TTL_SECONDS (the safety net
 * bounding any staleness the pipeline misses) applies to every filler, this one included.
 * No L1 here.
 */
export function checkoutProductCache(
  config: Pick<CheckoutConfig, "CACHE_SCHEMA_VERSION" | "CACHE_TTL_SECONDS">,
  redis: RedisClient,
  metrics: Registry,
  logger: Logger,
) {
  return createProductCache({
    redis,
    schemaVersion: config.CACHE_SCHEMA_VERSION,
    ttlSeconds: config.CACHE_TTL_SECONDS,
    leaseMs: 2_000,
    onSuppressedError: reportSuppressedErrors({
      registry: metrics,
      logger,
      metric: "checkout_product_cache_suppressed_errors_total",
      component: "product cache",
    }),
  });
}
