import { type CacheEvent, type L1Invalidations, type RedisClient, VersionedCache } from "@flashsale/cache";
import type { Product } from "@flashsale/db";

export interface ProductCacheOptions {
  redis: RedisClient;
  schemaVersion: number;
  ttlSeconds: number;
  leaseMs: number;
  /** Present = L1 on, kept coherent through this channel. */
  l1?: { invalidations: L1Invalidations; ttlMs: number; maxEntries: number };
  plainMode?: boolean;
  fallbackReads?: { limit: number; queue: number };
  onEvent?(event: CacheEvent): void;
}

/**
 * The product cache as both services use it: the catalog reads through it, checkout
 * reads current prices from it for display (never for charging: checkout charges what
 * Postgres says inside its transaction).
 */
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

/**
 * Structural check of a cached payload. A payload written by another code version
 * (or corrupted) fails it and is treated as a miss, never served (design.md §4).
 */
export function isProduct(x: unknown): x is Product {
  if (typeof x !== "object" || x === null) return false;
  const p = x as Record<string, unknown>;
  return (
    Number.isSafeInteger(p.id) &&
    typeof p.sku === "string" &&
    typeof p.name === "string" &&
    typeof p.description === "string" &&
    typeof p.currency === "string" &&
    Number.isSafeInteger(p.priceCents) &&
    Number.isSafeInteger(p.listPriceCents) &&
    Number.isSafeInteger(p.version) &&
    typeof p.updatedAt === "string" &&
    (p.validUntil === null || typeof p.validUntil === "string") &&
    (p.sale === null || (typeof p.sale === "object" && p.sale !== undefined))
  );
}
