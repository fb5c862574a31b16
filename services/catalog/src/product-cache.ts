import { type CacheEvent, type L1Invalidations, VersionedCache } from "@flashsale/cache";
import type { Product } from "@flashsale/db";
import type { Redis } from "ioredis";
import { isProduct } from "./product-schema.ts";

export interface ProductCacheOptions {
  redis: Redis;
  schemaVersion: number;
  ttlSeconds: number;
  leaseMs: number;
  /** Present = L1 on, kept coherent through this channel. */
  l1?: { invalidations: L1Invalidations; ttlMs: number; maxEntries: number };
  plainMode?: boolean;
  fallbackReads?: { limit: number; queue: number };
  onEvent?(event: CacheEvent): void;
}

/** The catalog's one cache: products by id, versioned by the row's `version`. */
export function createProductCache(opts: ProductCacheOptions): VersionedCache<Product> {
  return new VersionedCache<Product>({
    redis: opts.redis,
    entity: "product",
    schemaVersion: opts.schemaVersion,
    ttlMs: opts.ttlSeconds * 1000,
    leaseMs: opts.leaseMs,
    versionOf: (p) => p.version,
    validUntilMs: (p) => (p.validUntil ? Date.parse(p.validUntil) : null),
    isValid: isProduct,
    stampedeProtection: !opts.plainMode,
    ...(opts.l1 ? { l1: opts.l1 } : {}),
    ...(opts.fallbackReads ? { fallbackReads: opts.fallbackReads } : {}),
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
  });
}
