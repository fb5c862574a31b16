import { type CacheEntry, masterNodes, parseEntry, parseKey, type RedisClient, scanPattern } from "@flashsale/cache";
import { PRODUCT_ENTITY } from "@flashsale/product-cache";
import type pg from "pg";

/**
 * Cache consistency, measured the way Meta's Polaris does: compare what the cache
 * serves with the source of truth and report the inconsistent fraction ("nines") and
 * how long each inconsistency has lasted. Checks the Redis tier (L1s live inside the
 * catalog processes; they are bounded by seconds and kept coherent from Redis).
 *
 * A cached product is inconsistent when its version is older than the row's, or its
 * price differs from the effective price at the database's clock.
 */
export interface Inconsistency {
  productId: number;
  cachedVersion: number;
  dbVersion: number;
  cachedPriceCents: number;
  dbPriceCents: number;
  /** How long the database has disagreed with the cache (now - the row's updated_at, or since the sale boundary). */
  ageMs: number;
}

export interface CacheCheckReport {
  checkedAt: string;
  keysChecked: number;
  inconsistent: Inconsistency[];
  /** Inconsistencies older than graceMs: the invalidation pipeline is normally faster than that. */
  staleBeyondGrace: number;
  inconsistentFraction: number;
  /** -log10(inconsistent fraction beyond grace); Infinity when none. 3 = 99.9 % consistent. */
  nines: number;
}

/** What the check compares of a cached product (the stored format itself is packages/cache's entry.ts). */
type CachedProduct = CacheEntry<{ priceCents: number; version: number }>;

function asCachedProduct(raw: string): CachedProduct | null {
  const entry = parseEntry(raw);
  const value = entry?.value as Partial<CachedProduct["value"]> | null | undefined;
  if (!entry || typeof value !== "object" || value === null) return null;
  return entry as CachedProduct;
}

export async function checkCacheConsistency(opts: {
  redis: RedisClient;
  pool: pg.Pool;
  schemaVersion: number;
  /** At most this many keys (SCAN order); all when the catalog is small. */
  maxKeys?: number;
  graceMs?: number;
}): Promise<CacheCheckReport> {
  const graceMs = opts.graceMs ?? 2_000;
  const maxKeys = opts.maxKeys ?? 100_000;
  const match = scanPattern(PRODUCT_ENTITY, opts.schemaVersion);
  const cached = new Map<number, CachedProduct>();
  // SCAN runs per master (a cluster spreads the keys); GETs go through the client, which routes them.
  for (const node of masterNodes(opts.redis)) {
    let cursor = "0";
    do {
      const [next, keys] = await node.scan(cursor, "MATCH", match, "COUNT", 1000);
      cursor = next;
      const valueKeys = keys.filter((k) => parseKey(k)?.part === "value").slice(0, maxKeys - cached.size);
      if (valueKeys.length === 0) continue;
      const pipeline = opts.redis.pipeline();
      for (const k of valueKeys) pipeline.get(k);
      const values = (await pipeline.exec()) ?? [];
      values.forEach(([err, raw], i) => {
        if (err || typeof raw !== "string") return; // evicted or expired between SCAN and GET
        // An unparsable payload is never served (treated as a miss), so it is not an inconsistency.
        const entry = asCachedProduct(raw);
        if (entry) cached.set(Number(parseKey(valueKeys[i] as string)?.id), entry);
      });
    } while (cursor !== "0" && cached.size < maxKeys);
  }

  const ids = [...cached.keys()];
  const { rows } = await opts.pool.query<{ id: string; version: string; price: number; since_ms: number }>(
    `SELECT p.id, p.version, product_effective_price_cents(p, now()) AS price,
            extract(epoch FROM now() - greatest(p.updated_at,
              CASE WHEN p.sale_ends_at <= now() THEN p.sale_ends_at WHEN p.sale_starts_at <= now() THEN p.sale_starts_at END)) * 1000 AS since_ms
     FROM products p WHERE p.id = ANY($1::bigint[])`,
    [ids],
  );
  const inconsistent: Inconsistency[] = [];
  for (const r of rows) {
    const entry = cached.get(Number(r.id));
    if (!entry) continue;
    const dbVersion = Number(r.version);
    if (entry.value.version < dbVersion || entry.value.priceCents !== r.price) {
      inconsistent.push({
        productId: Number(r.id),
        cachedVersion: entry.value.version,
        dbVersion,
        cachedPriceCents: entry.value.priceCents,
        dbPriceCents: r.price,
        ageMs: Math.round(Number(r.since_ms)),
      });
    }
  }
  const staleBeyondGrace = inconsistent.filter((i) => i.ageMs > graceMs).length;
  const fraction = ids.length === 0 ? 0 : staleBeyondGrace / ids.length;
  return {
    checkedAt: new Date().toISOString(),
    keysChecked: ids.length,
    inconsistent,
    staleBeyondGrace,
    inconsistentFraction: fraction,
    nines: fraction === 0 ? Number.POSITIVE_INFINITY : -Math.log10(fraction),
  };
}
