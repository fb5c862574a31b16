/**
 * A checkout HTTP server for bench/checkout-http.ts: the real app (buildCheckoutApp) on the test
 * stack, with one of the benchmark's order placers, in its own process.
 *
 *   node --import tsx bench/checkout-server.ts <mode> <port>
 *   mode: "group commit" | "group commit + gate" | "today's flow + gate" | "naive FOR UPDATE"
 */
import { randomUUID } from "node:crypto";
import { StockGate } from "@flashsale/cache";
import { buildCheckoutApp } from "@flashsale/checkout";
import { createDb, type OrderPlacer } from "@flashsale/db";
import { createProductCache } from "@flashsale/product-cache";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { redisClient, TEST_ENV } from "@flashsale/testkit";
import { legacyPlaceOrder } from "./checkout-legacy.ts";
import { naiveCheckout } from "./naive-checkout.ts";

const mode = process.argv[2] ?? "group commit";
const port = Number(process.argv[3] ?? 3190);
const POOL = 10;
const db = createDb({ url: TEST_ENV.databaseUrl, poolMax: POOL, statementTimeoutMs: 30_000 });
const redis = redisClient();

let orders: OrderPlacer | undefined;
if (mode === "today's flow + gate") orders = { place: (req) => legacyPlaceOrder(db, req) };
if (mode === "naive FOR UPDATE") {
  orders = {
    place: async (req) => {
      const kind = await naiveCheckout(db, req.cartId);
      if (kind === "placed")
        return { kind, replayed: false, order: { id: randomUUID(), items: [], totalCents: 0, createdAt: new Date().toISOString() } };
      if (kind === "out_of_stock" || kind === "price_changed") return { kind, items: [] };
      return { kind };
    },
  };
}
const app = await buildCheckoutApp({
  db,
  redis,
  logger: createLogger("bench-checkout", "warn"),
  metrics: createMetricsRegistry("bench-checkout"),
  productCache: createProductCache({ redis, schemaVersion: 9_999, ttlSeconds: 60, leaseMs: 2_000 }),
  gate: mode.endsWith("+ gate") ? new StockGate(redis) : null,
  // Group commit's in-flight bound as main.ts sets it; the baselines get the pool (as before issue 11).
  transactions: orders ? { limit: POOL, queue: 100_000 } : { limit: 128, queue: 100_000 },
  rateLimit: { max: 1_000_000_000, windowMs: 1_000 },
  ...(orders ? { orders } : {}),
});
await app.listen({ host: "127.0.0.1", port });
console.log(`listening ${port}`);
const stop = async () => {
  await app.close();
  await Promise.all([db.$disconnect(), redis.quit()]);
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
