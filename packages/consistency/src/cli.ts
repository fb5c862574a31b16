/**
 * The consistency checker as a command, against the running stack:
 *   pnpm --filter @flashsale/consistency check [--since <ISO time>] [--max-keys N] [--json]
 * against REDIS_URL, or every master of REDIS_CLUSTER_NODES, and DATABASE_URL.
 * Exits 1 when a cached value is stale beyond the grace period or an order was charged
 * a price other than the effective price at its commit.
 */
import { parseArgs } from "node:util";
import { createRedisClient, liveSchemaVersions, redisReady } from "@flashsale/cache";
import { DEFAULT_CACHE_SCHEMA_VERSION } from "@flashsale/config";
import pg from "pg";
import { checkCacheConsistency } from "./cache-check.ts";
import { auditOrders } from "./order-audit.ts";

const { values } = parseArgs({
  options: { since: { type: "string" }, "max-keys": { type: "string" }, json: { type: "boolean" }, "grace-ms": { type: "string" } },
});
const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL ?? "postgresql://flashsale:flashsale@127.0.0.1:5432/flashsale",
  connectionTimeoutMillis: 5_000,
  statement_timeout: 60_000,
  query_timeout: 61_000,
});
pool.on("error", () => {});
// The services' own choice of single node vs cluster (REDIS_CLUSTER_NODES): on a cluster every
// master is scanned, not only the one REDIS_URL happens to name.
const redis = createRedisClient({
  url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
  clusterNodes: (process.env.REDIS_CLUSTER_NODES ?? "")
    .split(",")
    .map((n) => n.trim())
    .filter(Boolean),
  commandTimeoutMs: 5_000,
  failFast: false,
});
redis.on("error", () => {}); // a failed command below ends the run with its error
try {
  await redisReady(redis);
  // Every live schema version (what catalogs announce, as the invalidator evicts them) plus CACHE_SCHEMA_VERSION.
  const own = Number(process.env.CACHE_SCHEMA_VERSION ?? DEFAULT_CACHE_SCHEMA_VERSION);
  const versions = [...new Set([own, ...(await liveSchemaVersions(redis))])].sort((a, b) => a - b);
  const reports = [];
  for (const schemaVersion of versions) {
    reports.push(
      await checkCacheConsistency({
        redis,
        pool,
        schemaVersion,
        maxKeys: Number(values["max-keys"] ?? 100_000),
        graceMs: Number(values["grace-ms"] ?? 2_000),
      }),
    );
  }
  const keysChecked = reports.reduce((n, r) => n + r.keysChecked, 0);
  const staleBeyondGrace = reports.reduce((n, r) => n + r.staleBeyondGrace, 0);
  const fraction = keysChecked === 0 ? 0 : staleBeyondGrace / keysChecked;
  const cache = {
    schemaVersions: versions,
    keysChecked,
    inconsistent: reports.flatMap((r) => r.inconsistent),
    staleBeyondGrace,
    nines: fraction === 0 ? Number.POSITIVE_INFINITY : -Math.log10(fraction),
  };
  const orders = await auditOrders(pool, { since: new Date(values.since ?? 0) });
  if (values.json) {
    console.log(JSON.stringify({ cache, orders }, null, 2));
  } else {
    console.log(
      `cache (schema versions ${cache.schemaVersions.join(", ")}): ${cache.keysChecked} keys checked, ${cache.inconsistent.length} inconsistent (${cache.staleBeyondGrace} beyond grace), nines ${cache.nines === Infinity ? "∞" : cache.nines.toFixed(2)}`,
    );
    for (const i of cache.inconsistent.slice(0, 20))
      console.log(
        `  product ${i.productId}: cached v${i.cachedVersion} ${i.cachedPriceCents}¢, ${i.dbVersion === null ? "row gone" : `db v${i.dbVersion} ${i.dbPriceCents}¢`}, for ${i.ageMs} ms`,
      );
    console.log(
      `orders: ${orders.orderLinesChecked} lines checked (${orders.unauditable} without commit timestamps/history), ${orders.wrongPrice.length} at a wrong price, ${orders.negativeStockProducts} products below zero stock`,
    );
    for (const w of orders.wrongPrice.slice(0, 20))
      console.log(
        `  order ${w.orderId} product ${w.productId}: charged ${w.chargedCents}¢, effective at commit ${w.effectiveCentsAtCommit}¢`,
      );
  }
  process.exitCode = cache.staleBeyondGrace > 0 || orders.wrongPrice.length > 0 || orders.negativeStockProducts > 0 ? 1 : 0;
} finally {
  await pool.end();
  redis.disconnect();
}
