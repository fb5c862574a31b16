import type { CacheEvent, VersionedCache, VersionedCacheOptions } from "../src/cache.ts";
import { createVersionedCache } from "../src/cache.ts";
import type { RedisClient } from "../src/redis-client.ts";

/** The row every cache test caches: a version, and a price and validUntil where the test needs them. */
export interface Row {
  id: number;
  version: number;
  priceCents?: number;
  validUntil?: number | null;
  /** What the consistency checker reads of a cached product's schedule (packages/consistency). */
  listPriceCents?: number;
  sale?: null;
}

export const isRow = (x: unknown): x is Row => typeof x === "object" && x !== null && typeof (x as Row).version === "number";

/**
 * A cache of Rows as the tests build it: product keys of `schemaVersion`, 60 s TTL, 2 s leases,
 * events pushed into `events`; anything else from `extra`.
 */
export function testCache(
  redis: RedisClient,
  schemaVersion: number,
  extra: Partial<VersionedCacheOptions<Row>> & { events?: CacheEvent[] } = {},
): VersionedCache<Row> {
  const { events, ...options } = extra;
  return createVersionedCache<Row>({
    redis,
    entity: "product",
    schemaVersion,
    ttlMs: 60_000,
    leaseMs: 2_000,
    versionOf: (r) => r.version,
    validUntilMs: (r) => r.validUntil ?? null,
    isValid: isRow,
    ...(events ? { onEvent: (e: CacheEvent) => events.push(e) } : {}),
    ...options,
  });
}
