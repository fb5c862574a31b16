/**
 * Issue 10, "done when": with Redis paused, a raw-SQL price change is served by the catalog within
 * Δ + 1 s. The catalog, and an invalidator on the test stack's pipeline, use a private redis-server
 * this test SIGSTOPs (a stalled Redis neither refuses nor answers): the catalog cannot read the
 * watermark, which counts as old, and its Redis commands time out into BYPASS (docs/architecture.md
 * "Freshness", "Failure modes"). Δ is the catalogs' default bound (2 s). Two protections each suffice
 * here, checked: the bound alone (L1 canary off) and the L1 canary alone (Δ = 0) both pass; with
 * neither, the L1 serves the old price past Δ + 1 s and this test fails.
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
    KAFKA_GROUP_ID: `flashsale-test-redis-hang-${run}`,
    KAFKA_NEW_GROUP_START: "latest",
  });
  catalog = await startService("catalog", { REDIS_URL: redis.url });
  // The pipeline is live once a raw-SQL change to a cached product is served quickly.
  const probe = await insertProduct(pool, { sku: `REDISHANG-${run}-probe`, listPriceCents: 100, stock: 1 });
  await pipelineServesChanges(catalog.url, probe.id, { timeoutMs: 90_000, what: "the pipeline to serve a first change" });
}, 180_000);

afterAll(async () => {
  await invalidator?.stop();
  await catalog?.stop();
  await redis?.stop();
  await pool?.end();
});

describe("Redis hang (SIGSTOP)", () => {
  it("a raw-SQL change is served within Δ + 1 s while Redis is stopped, and hits resume after", async () => {
    const p = await insertProduct(pool, { sku: `REDISHANG-${run}`, listPriceCents: 6_000, stock: 1 });
    await cached(catalog.url, p.id);
    const [first, second] = await changesServedWhilePaused(catalog.url, p.id, 6000, redis, DELTA_MS + 1_000);
    console.log(`Redis stopped: change served after ${Math.round(first)} ms (start of pause), ${Math.round(second)} ms (into it)`);
    expect(first).toBeLessThanOrEqual(DELTA_MS + 1_000);
    expect(second).toBeLessThanOrEqual(DELTA_MS + 1_000);
    await cached(catalog.url, p.id, 40_000);
  }, 90_000);
});
