import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { entityKeys } from "@flashsale/cache";
import { checkoutSchema, loadConfig } from "@flashsale/config";
import { createDb, findProduct } from "@flashsale/db";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { insertProduct, pgPool, redisClient, runId, type ServiceProcess, spawnService, TEST_ENV } from "@flashsale/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkoutProductCache } from "../src/product-cache.ts";

/**
 * Several checkout processes on one hot SKU (issue 11 item 3): two real checkout processes
 * (main.ts, group commit in each) sell one product through HTTP; Postgres alone arbitrates
 * between them. Also issue 12 item 10: the checkout's product-cache fills follow CACHE_TTL_SECONDS.
 */
const run = runId();
const pool = pgPool();
const redis = redisClient();
const services: ServiceProcess[] = [];

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

beforeAll(async () => {
  const env = { CHECKOUT_RATE_LIMIT_MAX: "1000000", STOCK_GATE_ENABLED: "true" };
  services.push(...(await Promise.all([spawnService("checkout", await freePort(), env), spawnService("checkout", await freePort(), env)])));
}, 120_000);
afterAll(async () => {
  await Promise.all(services.map((s) => s.stop()));
  await Promise.all([pool.end(), redis.quit()]);
});

describe("two checkout processes on one hot SKU", () => {
  it("sell exactly the stock between them (no oversell, each sells some) and report their throughput", async () => {
    const STOCK = 300;
    const BUYERS = 900;
    const p = await insertProduct(pool, { sku: `TWO-${run}`, listPriceCents: 400, stock: STOCK });
    const { rows: carts } = await pool.query<{ id: string }>(
      "INSERT INTO carts (user_id) SELECT NULL FROM generate_series(1, $1) RETURNING id::text",
      [BUYERS],
    );
    await pool.query(
      `INSERT INTO cart_items (cart_id, product_id, quantity, price_cents_seen, version_seen)
       SELECT c, $2, 1, 400, 1 FROM unnest($1::uuid[]) c`,
      [carts.map((c) => c.id), p.id],
    );
    const byProcess = services.map(() => ({ placed: 0, outOfStock: 0, other: 0 }));
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 64 }, async (_, worker) => {
        while (next < carts.length) {
          const i = next++;
          const which = worker % services.length;
          const res = await fetch(`${services[which]?.url}/carts/${carts[i]?.id}/checkout`, {
            method: "POST",
            headers: { "idempotency-key": `two-${run}-${i}` },
            signal: AbortSignal.timeout(30_000),
          });
          const tally = byProcess[which] as { placed: number; outOfStock: number; other: number };
          if (res.status === 201) tally.placed++;
          else if (res.status === 409 && (await res.json()).error === "OUT_OF_STOCK") tally.outOfStock++;
          else tally.other++;
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const placed = byProcess.reduce((s, t) => s + t.placed, 0);
    console.log(
      `two processes, ${BUYERS} buyers (64 concurrent) on one SKU of ${STOCK}: ${JSON.stringify(byProcess)}; ${Math.round(placed / seconds)} orders/s, ${Math.round(BUYERS / seconds)} checkouts/s`,
    );
    expect(byProcess.every((t) => t.other === 0)).toBe(true);
    expect(byProcess.every((t) => t.placed > 0)).toBe(true);
    expect(placed).toBe(STOCK);
    const { rows } = await pool.query(
      "SELECT i.available, (SELECT coalesce(sum(quantity), 0)::int FROM order_items WHERE product_id = $1) AS sold FROM inventory i WHERE product_id = $1",
      [p.id],
    );
    expect(rows[0]).toEqual({ available: 0, sold: STOCK });
  }, 120_000);
});

describe("one TTL policy for the shared product keys (issue 12 item 10)", () => {
  it("the checkout's fills take CACHE_TTL_SECONDS, as the catalog's do", async () => {
    const schemaVersion = 8_000 + Math.floor(Math.random() * 1_000);
    const config = loadConfig(checkoutSchema, { CACHE_TTL_SECONDS: "60", CACHE_SCHEMA_VERSION: String(schemaVersion) });
    const db = createDb({ url: TEST_ENV.databaseUrl, poolMax: 2 });
    try {
      const cache = checkoutProductCache(config, redis, createMetricsRegistry("checkout-ttl-test"), createLogger("ttl", "silent"));
      const p = await insertProduct(pool, { sku: `TTL-${run}`, listPriceCents: 100, stock: 1 });
      await cache.get(p.id, () => findProduct(db, p.id));
      const ttlMs = await redis.pttl(entityKeys(schemaVersion, "product", p.id).value);
      // 60 s (+ a few per cent of jitter) plus the cache's stale grace: minutes, not the 24 h
      // (86,400,000 ms) checkout hard-coded before.
      expect(ttlMs).toBeGreaterThan(0);
      expect(ttlMs).toBeLessThan(180_000);
    } finally {
      await db.$disconnect();
    }
  });
});
