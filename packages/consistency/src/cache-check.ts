import { type CacheEntry, masterNodes, parseEntry, parseKey, type RedisClient, scanPattern } from "@flashsale/cache";
import { effectivePriceCents, PRODUCT_ENTITY } from "@flashsale/product-cache";
import type pg from "pg";

/**
 * Cache consistency, measured the way Meta's Polaris does: compare what the cache
 * serves with the source of truth and report the inconsistent fraction ("nines") and
 * how long each inconsistency has lasted. Checks the Redis tier (L1s live inside the
 * catalog processes; they are bounded by seconds and kept coherent from Redis).
 *
 * A cached product is inconsistent when its version is older than the row's, its price differs
 * from the effective price at the database's clock (also at an equal version: a write that did not
 * move the version), or its row no longer exists (deleted, truncated).
 */
export interface Inconsistency {
  productId: number;
  /** The cache key that holds it (what a repair evicts). */
  key: string;
  cachedVersion: number;
  /** null: the row is gone (deleted or truncated) while the cache still serves it. */
  dbVersion: number | null;
  cachedPriceCents: number;
  dbPriceCents: number | null;
  /**
   * How long the database has disagreed with the cache (now - the row's updated_at, or since the sale
   * boundary); for a row that is gone, since the entry was stored (an upper bound: the delete is not dated).
   */
  ageMs: number;
}

/**
 * Where a check that ran out of its key budget stopped: the master (index into masterNodes), the
 * SCAN cursor on it, and how many value keys of the batch at that cursor it already checked. Pass
 * it back (`from`) and the next check continues there, so successive sampling checks cover every
 * cached key instead of the same first `maxKeys` of SCAN order each time.
 */
export interface ScanPosition {
  node: number;
  cursor: string;
  skip: number;
}

export interface CacheCheckReport {
  checkedAt: string;
  keysChecked: number;
  /** Where the next sampling check continues (the start after a full pass). */
  next: ScanPosition;
  inconsistent: Inconsistency[];
  /** Inconsistencies older than graceMs: the invalidation pipeline is normally faster than that. */
  staleBeyondGrace: number;
  inconsistentFraction: number;
  /** -log10(inconsistent fraction beyond grace); Infinity when none. 3 = 99.9 % consistent. */
  nines: number;
}

/** What the check compares of a cached product (the stored format itself is packages/cache's entry.ts). */
type CachedProduct = CacheEntry<Parameters<typeof effectivePriceCents>[0] & { version: number }>;

/** A readable cached product, or null: a payload without a schedule is never served (a miss), so it is not checked. */
function asCachedProduct(raw: string): CachedProduct | null {
  const entry = parseEntry(raw);
  const value = entry?.value as Partial<CachedProduct["value"]> | null | undefined;
  if (!entry || typeof value !== "object" || value === null) return null;
  if (typeof value.version !== "number" || typeof value.listPriceCents !== "number") return null;
  if (value.sale !== null && (typeof value.sale !== "object" || value.sale === undefined)) return null;
  return entry as CachedProduct;
}

export async function checkCacheConsistency(opts: {
  redis: RedisClient;
  pool: pg.Pool;
  schemaVersion: number;
  /** At most this many keys (SCAN order, from `from`); all when the catalog is small. */
  maxKeys?: number;
  graceMs?: number;
  /** Continue where an earlier check stopped (its `next`); default: from the start. */
  from?: ScanPosition;
}): Promise<CacheCheckReport> {
  const graceMs = opts.graceMs ?? 2_000;
  const maxKeys = opts.maxKeys ?? 100_000;
  const match = scanPattern(PRODUCT_ENTITY, opts.schemaVersion);
  const cached = new Map<number, CachedProduct & { key: string }>();
  // SCAN runs per master (a cluster spreads the keys); GETs go through the client, which routes them.
  const nodes = masterNodes(opts.redis);
  const start = opts.from && opts.from.node < nodes.length ? opts.from : { node: 0, cursor: "0", skip: 0 };
  let { node, cursor, skip } = start;
  let next: ScanPosition = { node: start.node, cursor: "0", skip: 0 };
  // At most one pass: through the rest of the starting master, then every other master once.
  for (;;) {
    const scanned = nodes[node];
    if (!scanned) break;
    const [after, keys] = await scanned.scan(cursor, "MATCH", match, "COUNT", 1000);
    const batch = keys.filter((k) => parseKey(k)?.part === "value").slice(skip);
    const room = maxKeys - cached.size;
    const valueKeys = batch.slice(0, room);
    await readEntries(opts.redis, valueKeys, cached);
    if (batch.length > room) {
      // The budget ends inside this batch: the next check starts with the keys left in it.
      next = { node, cursor, skip: skip + room };
      break;
    }
    skip = 0;
    cursor = after;
    if (cursor === "0") {
      node = (node + 1) % nodes.length;
      if (node === start.node) break; // a full pass
    }
    if (cached.size >= maxKeys) {
      next = { node, cursor, skip: 0 };
      break;
    }
  }

  const ids = [...cached.keys()];
  // A cached product holds its price schedule: its price is computed at the same DB instant as the row's.
  const { rows } = await opts.pool.query<{ id: string; version: string; price: number; since_ms: number; now_ms: number }>(
    `SELECT p.id, p.version, product_effective_price_cents(p, now()) AS price, extract(epoch FROM now()) * 1000 AS now_ms,
            extract(epoch FROM now() - greatest(p.updated_at,
              CASE WHEN p.sale_ends_at <= now() THEN p.sale_ends_at WHEN p.sale_starts_at <= now() THEN p.sale_starts_at END)) * 1000 AS since_ms
     FROM products p WHERE p.id = ANY($1::bigint[])`,
    [ids],
  );
  const inconsistent: Inconsistency[] = [];
  const found = new Set<number>();
  for (const r of rows) {
    const entry = cached.get(Number(r.id));
    if (!entry) continue;
    found.add(Number(r.id));
    const dbVersion = Number(r.version);
    const cachedPriceCents = effectivePriceCents(entry.value, Number(r.now_ms));
    if (entry.value.version < dbVersion || cachedPriceCents !== r.price) {
      inconsistent.push({
        productId: Number(r.id),
        key: entry.key,
        cachedVersion: entry.value.version,
        dbVersion,
        cachedPriceCents,
        dbPriceCents: r.price,
        ageMs: Math.round(Number(r.since_ms)),
      });
    }
  }
  // Cached products whose row is gone: a delete or a TRUNCATE whose eviction was lost.
  const nowMs = Number(rows[0]?.now_ms ?? Date.now());
  for (const [id, entry] of cached) {
    if (found.has(id)) continue;
    inconsistent.push({
      productId: id,
      key: entry.key,
      cachedVersion: entry.value.version,
      dbVersion: null,
      cachedPriceCents: effectivePriceCents(entry.value, nowMs),
      dbPriceCents: null,
      ageMs: Math.max(0, Math.round(Date.now() - entry.storedAt)),
    });
  }
  const staleBeyondGrace = inconsistent.filter((i) => i.ageMs > graceMs).length;
  const fraction = ids.length === 0 ? 0 : staleBeyondGrace / ids.length;
  return {
    checkedAt: new Date().toISOString(),
    keysChecked: ids.length,
    next,
    inconsistent,
    staleBeyondGrace,
    inconsistentFraction: fraction,
    nines: fraction === 0 ? Number.POSITIVE_INFINITY : -Math.log10(fraction),
  };
}

/**
 * The safe repair of what a check found (docs/architecture.md#invalidator): delete the values that
 * are stale beyond the grace period (a cache miss re-reads Postgres). A value whose version moved
 * since the check (a fill landed) is left alone; GET then DEL is not atomic, so a fill landing in
 * between may be deleted too, which costs one miss. Returns how many were deleted.
 */
export async function repairInconsistencies(
  redis: RedisClient,
  report: Pick<CacheCheckReport, "inconsistent">,
  graceMs = 2_000,
): Promise<number> {
  let repaired = 0;
  for (const i of report.inconsistent) {
    if (i.ageMs <= graceMs) continue;
    const raw = await redis.get(i.key);
    const entry = raw === null ? null : asCachedProduct(raw);
    if (!entry || entry.value.version !== i.cachedVersion) continue;
    repaired += await redis.del(i.key);
  }
  return repaired;
}

/** GETs `keys` (routed by the client) and adds every readable cached product to `into`. */
async function readEntries(redis: RedisClient, keys: string[], into: Map<number, CachedProduct & { key: string }>): Promise<void> {
  if (keys.length === 0) return;
  const pipeline = redis.pipeline();
  for (const k of keys) pipeline.get(k);
  const values = (await pipeline.exec()) ?? [];
  values.forEach(([err, raw], i) => {
    if (err || typeof raw !== "string") return; // evicted or expired between SCAN and GET
    // An unparsable payload is never served (treated as a miss), so it is not an inconsistency.
    const entry = asCachedProduct(raw);
    if (entry) into.set(Number(parseKey(keys[i] as string)?.id), { ...entry, key: keys[i] as string });
  });
}
