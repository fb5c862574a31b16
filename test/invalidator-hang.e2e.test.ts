/**
 * Issue 10, "done when": with the invalidator paused, a raw-SQL price change is served by the
 * catalog within Δ + 1 s. The test stack's pipeline (shared Debezium connector and topics) feeds an
 * invalidator process this test spawns and SIGSTOPs; it and the catalog share a private Redis, so
 * the freshness watermark the catalog reads comes from that invalidator alone (docs/architecture.md
 * "Freshness"). Δ is the catalogs' default bound (2 s).
 */
import { insertProduct, pgPool, runId } from "@flashsale/testkit";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cached, changesServedWhilePaused, type OwnedProcess, pipelineServesChanges, startRedis, startService } from "./private-stack.ts";

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
  await pipelineServesChanges(catalog.url, probe.id, { timeoutMs: 90_000, what: "the pipeline to serve a first change" });
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
    const [first, second] = await changesServedWhilePaused(catalog.url, p.id, 5000, invalidator, DELTA_MS + 1_000);
    console.log(`invalidator stopped: change served after ${Math.round(first)} ms (start of pause), ${Math.round(second)} ms (into it)`);
    expect(first).toBeLessThanOrEqual(DELTA_MS + 1_000);
    expect(second).toBeLessThanOrEqual(DELTA_MS + 1_000);
    // Back to normal once the watermark is fresh again: answers come from the cache.
    await cached(catalog.url, p.id, 40_000);
  }, 90_000);
});
