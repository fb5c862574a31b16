/**
 * Issue 10, "done when": with the invalidator paused, a raw-SQL price change is served by the
 * catalog within Δ + 1 s. The test stack's pipeline (shared Debezium connector and topics) feeds an
 * invalidator process this test spawns and SIGSTOPs; it and the catalog share a private Redis, so
 * the freshness watermark the catalog reads comes from that invalidator alone (docs/architecture.md
 * "Freshness"). Δ is the catalogs' default bound (2 s).
 */
import { insertProduct, pgPool, runId, waitFor } from "@flashsale/testkit";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cached, type OwnedProcess, psql, servedWithin, startRedis, startService } from "./private-stack.ts";

const DELTA_MS = 2_000;
const run = runId();
let pool: pg.Pool;
let redis: OwnedProcess;
let invalidator: OwnedProcess;
let catalog: OwnedProcess;

beforeAll(async () => {
  pool = pgPool();
  redis = await startRedis();
  invalidator = await startService("invalidator", {
    REDIS_URL: redis.url,
    KAFKA_GROUP_ID: `flashsale-test-inv-hang-${run}`,
    KAFKA_NEW_GROUP_START: "latest",
  });
  catalog = await startService("catalog", { REDIS_URL: redis.url });
  // The pipeline is live once a raw-SQL change to a cached product is served quickly.
  const probe = await insertProduct(pool, { sku: `INVHANG-${run}-probe`, listPriceCents: 100, stock: 1 });
  let price = 100;
  await waitFor(
    async () => {
      if (
        !(await cached(catalog.url, probe.id).then(
          () => true,
          () => false,
        ))
      )
        return undefined;
      price++;
      await psql(`UPDATE products SET list_price_cents = ${price} WHERE id = ${probe.id}`);
      return servedWithin(catalog.url, probe.id, price, performance.now(), 5_000).catch(() => undefined);
    },
    { timeoutMs: 90_000, what: "the pipeline to serve a first change" },
  );
}, 180_000);

afterAll(async () => {
  await invalidator?.stop();
  await catalog?.stop();
  await redis?.stop();
  await pool?.end();
});

describe("invalidator hang (SIGSTOP)", () => {
  it("a raw-SQL change is served within Δ + 1 s while the invalidator is stopped, and hits resume after", async () => {
    const p = await insertProduct(pool, { sku: `INVHANG-${run}`, listPriceCents: 5_000, stock: 1 });
    await cached(catalog.url, p.id);
    invalidator.pause();
    try {
      // Right at the start of the pause: the watermark was fresh, so this one waits out Δ.
      let t0 = performance.now();
      await psql(`UPDATE products SET list_price_cents = 5001 WHERE id = ${p.id}`);
      const first = await servedWithin(catalog.url, p.id, 5001, t0, DELTA_MS + 1_000);
      // Well into the pause (the watermark is older than Δ): every hit is revalidated, so at once.
      await new Promise((r) => setTimeout(r, 1_500));
      t0 = performance.now();
      await psql(`UPDATE products SET list_price_cents = 5002 WHERE id = ${p.id}`);
      const second = await servedWithin(catalog.url, p.id, 5002, t0, DELTA_MS + 1_000);
      console.log(`invalidator stopped: change served after ${Math.round(first)} ms (start of pause), ${Math.round(second)} ms (into it)`);
      expect(first).toBeLessThanOrEqual(DELTA_MS + 1_000);
      expect(second).toBeLessThanOrEqual(DELTA_MS + 1_000);
    } finally {
      invalidator.resume();
    }
    // Back to normal once the watermark is fresh again: answers come from the cache.
    await cached(catalog.url, p.id, 40_000);
  }, 90_000);
});
