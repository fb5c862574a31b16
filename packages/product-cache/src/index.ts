import {
  type CacheEvent,
  type CacheMode,
  createVersionedCache,
  type EntityKeys,
  type EntryRules,
  entityKeys,
  invalidateEntity,
  type L1Invalidations,
  type RedisClient,
  type SuppressedOperation,
  type VersionedCacheOptions,
} from "@flashsale/cache";
import { type ProductRecord, productRecordSchema } from "@flashsale/db";
import { Ajv } from "ajv";
import formats from "ajv-formats";
import { dbClockSource, ProductCache, type ProductClock } from "./schedule.ts";

export {
  dbClockSource,
  effectivePriceCents,
  type Phase,
  ProductCache,
  type ProductClock,
  type ProductRead,
  type ProductView,
  phaseAt,
  productAt,
  settle,
  toRecord,
} from "./schedule.ts";

/** The entity name in every product key: the catalog and checkout read it, the invalidator evicts it. */
export const PRODUCT_ENTITY = "product";

/**
 * The fence version of a deleted product: above every real version, so no fill of it ever passes
 * until a re-insert replaces exactly this value (`replacesDeleteFence`). The invalidator fences
 * delete events with it and the catalog's admin DELETE evicts with it (read-your-writes).
 */
export const PRODUCT_DELETE_FENCE_VERSION = Number.MAX_SAFE_INTEGER;

/**
 * The fence of the catalog's own DELETE (read-your-writes), one below the invalidator's: also above
 * every real version, but **not** replaceable. The write path runs ahead of CDC, so a change
 * committed *before* the delete may still be on its way; had it found the replaceable sentinel, its
 * version would have replaced it and a fill read before the delete could pass. The delete's own CDC
 * event raises this fence to `PRODUCT_DELETE_FENCE_VERSION` (fences only move up), which a later
 * re-insert may replace.
 */
export const PRODUCT_WRITE_PATH_DELETE_FENCE_VERSION = PRODUCT_DELETE_FENCE_VERSION - 1;

/** The Redis keys of one cached product (value, lease, fence) under a schema version. */
export function productKeys(schemaVersion: number, id: number): EntityKeys {
  return entityKeys(schemaVersion, PRODUCT_ENTITY, id);
}

export interface ProductCacheOptions {
  redis: RedisClient;
  schemaVersion: number;
  ttlSeconds: number;
  leaseMs: number;
  /** Present = L1 on, kept coherent through this channel. */
  l1?: { invalidations: L1Invalidations; ttlMs: number; maxEntries: number };
  /** CACHE_MODE: "plain" is the stampede benchmark's baseline only. Default "protocol". */
  mode?: CacheMode;
  fallbackReads?: { limit: number; queue: number };
  onEvent?(event: CacheEvent): void;
  onSuppressedError?(operation: SuppressedOperation, err: unknown): void;
  /**
   * Where the DB clock comes from (docs/architecture.md#price-schedule-and-the-db-clock). Default:
   * the process's estimate fed by product reads; pass `dbClockSource(db)` to also probe when idle.
   */
  clock?: ProductClock;
  /** Bounded staleness and negative caching, as packages/cache defines them (the catalog wires them: deps.ts). */
  staleness?: VersionedCacheOptions<ProductRecord>["staleness"];
  negativeTtlMs?: number;
}

/**
 * How a cached product is versioned, bounded in time and validated when read back. A cached record
 * holds the price schedule, not a price: nothing in it becomes wrong at a sale boundary, so it has
 * no validUntil (the price is computed at the DB clock per response: schedule.ts).
 */
const productEntryRules: EntryRules<ProductRecord> = {
  versionOf: (p) => p.version,
  validUntilMs: () => null,
  isValid: isProductRecord,
};

/**
 * The product cache as both services use it: the catalog reads through it, checkout
 * reads current prices from it for display (never for charging: checkout charges what
 * Postgres says inside its transaction).
 */
export function createProductCache(opts: ProductCacheOptions): ProductCache {
  const records = createVersionedCache<ProductRecord>({
    redis: opts.redis,
    entity: PRODUCT_ENTITY,
    schemaVersion: opts.schemaVersion,
    ttlMs: opts.ttlSeconds * 1000,
    leaseMs: opts.leaseMs,
    ...productEntryRules,
    ...(opts.mode ? { mode: opts.mode } : {}),
    ...(opts.l1 ? { l1: opts.l1 } : {}),
    ...(opts.fallbackReads ? { fallbackReads: opts.fallbackReads } : {}),
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    ...(opts.onSuppressedError ? { onSuppressedError: opts.onSuppressedError } : {}),
    ...(opts.staleness ? { staleness: opts.staleness } : {}),
    ...(opts.negativeTtlMs ? { negativeTtlMs: opts.negativeTtlMs } : {}),
  });
  return new ProductCache(records, opts.clock ?? dbClockSource(null));
}

/**
 * A product changed (any write path; the invalidator calls this for every products change event):
 * evict it and fence every fill that read an older version (docs/architecture.md#invalidation).
 */
export function invalidateProduct(
  redis: RedisClient,
  change: { schemaVersion: number; id: number; version: number; fenceTtlMs: number; replacesDeleteFence?: number },
): Promise<void> {
  return invalidateEntity(redis, { ...change, entity: PRODUCT_ENTITY });
}

// ajv-formats is CommonJS: its function is the default export under Node, `.default` under its types.
const addFormats = formats as unknown as typeof formats.default;
const validateRecord = addFormats(new Ajv({ allErrors: false, strict: true, strictTypes: false })).compile(productRecordSchema);

/**
 * Validation of a cached payload against the stored form of the one Product schema (packages/db
 * product-schema.ts `productRecordSchema`). A payload written by another code version (a field
 * added, renamed or retyped) or corrupted fails it and is treated as a miss, never served
 * (docs/architecture.md#cache-protocol).
 */
export function isProductRecord(x: unknown): x is ProductRecord {
  return validateRecord(x);
}
