/**
 * Issue 10, "done when": two catalogs on different cache schema versions (a rolling deploy that
 * bumps CACHE_SCHEMA_VERSION) both serve a raw-SQL change within 2 s. Side by side: catalog processes
 * on version N and N+1 and one invalidator (configured with N, like the fleet before the rollout), on
 * the test stack's pipeline and a private Redis (the announced versions and the watermark are this
 * file's alone). Each catalog announces its version; the invalidator evicts every announced one
 * (docs/architecture.md "Freshness").
 */
import { insertProduct, pgPool, runId, waitFor } from "@flashsale/testkit";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cached, type OwnedProcess, psql, servedWithin, startRedis, startService } from "./private-stack.ts";

const N = 500_000 + Math.floor(Math.random() * 400_000);
const run = runId();
let pool: pg.Pool;
let redis: OwnedProcess;
let invalidator: OwnedProcess;
let oldCatalog: OwnedProcess;
let newCatalog: OwnedProcess;

beforeAll(async () => {
  pool = pgPool();
  redis = await startRedis();
  invalidator = await startService("invalidator", {
    REDIS_URL: redis.url,
    CACHE_SCHEMA_VERSION: String(N),
    KAFKA_GROUP_ID: `flashsale-test-rollout-${run}`,
    KAFKA_NEW_GROUP_START: "latest",
  });
  oldCatalog = await startService("catalog", { REDIS_URL: redis.url, CACHE_SCHEMA_VERSION: String(N) });
  // The pipeline is live once the old catalog serves a raw-SQL change to a cached product.
  const probe = await insertProduct(pool, { sku: `ROLLOUT-${run}-probe`, listPriceCents: 100, stock: 1 });
  let price = 100;
  await waitFor(
    async () => {
      if (
        !(await cached(oldCatalog.url, probe.id).then(
          () => true,
          () => false,
        ))
      )
        return undefined;
      price++;
      await psql(`UPDATE products SET list_price_cents = ${price} WHERE id = ${probe.id}`);
      return servedWithin(oldCatalog.url, probe.id, price, performance.now(), 5_000).catch(() => undefined);
    },
    { timeoutMs: 90_000, what: "the pipeline to serve a first change" },
  );
  // The rollout: a catalog on N+1 joins the one on N.
  newCatalog = await startService("catalog", { REDIS_URL: redis.url, CACHE_SCHEMA_VERSION: String(N + 1) });
}, 180_000);

afterAll(async () => {
  await invalidator?.stop();
  await oldCatalog?.stop();
  await newCatalog?.stop();
  await redis?.stop();
  await pool?.end();
});

describe("schema rollout: catalogs on version N and N+1 side by side", () => {
  it("both serve a raw-SQL change within 2 s (10 changes)", async () => {
    const p = await insertProduct(pool, { sku: `ROLLOUT-${run}`, listPriceCents: 9_000, stock: 1 });
    const took: number[][] = [];
    for (let i = 1; i <= 10; i++) {
      await cached(oldCatalog.url, p.id);
      await cached(newCatalog.url, p.id);
      const t0 = performance.now();
      await psql(`UPDATE products SET list_price_cents = ${9_000 + i} WHERE id = ${p.id}`);
      const [a, b] = await Promise.all([
        servedWithin(oldCatalog.url, p.id, 9_000 + i, t0, 2_000),
        servedWithin(newCatalog.url, p.id, 9_000 + i, t0, 2_000),
      ]);
      took.push([Math.round(a), Math.round(b)]);
    }
    console.log(`schema rollout: ms until served [version N, N+1]: ${JSON.stringify(took)}`);
    for (const [a, b] of took) {
      expect(a).toBeLessThanOrEqual(2_000);
      expect(b).toBeLessThanOrEqual(2_000);
    }
  }, 90_000);
});
