import { createDb } from "@flashsale/db";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { insertProduct, pgPool, redisClient, runId, TEST_ENV } from "@flashsale/testkit";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCatalogApp } from "../src/app.ts";

/**
 * Load shedding (docs/architecture.md#load-shedding): once the event loop's mean delay over a sample
 * is above the bound, API requests get 503 OVERLOADED + Retry-After at once; health and metrics do
 * not. The saturation is made by blocking this process's event loop (the app runs in it).
 */
const db = createDb({ url: TEST_ENV.databaseUrl, poolMax: 2 });
const redis = redisClient();
const pool = pgPool();
let app: FastifyInstance;

beforeAll(async () => {
  app = await buildCatalogApp({
    db,
    redis,
    logger: createLogger("shed-test", "silent"),
    metrics: createMetricsRegistry("shed-test"),
    adminToken: "test-admin-token-0123456789",
    cache: { schemaVersion: 11_000 + Math.floor(Math.random() * 1000), ttlSeconds: 3600, leaseMs: 2000 },
    shedding: { maxEventLoopDelayMs: 30, maxHeapUsedBytes: 0, sampleIntervalMs: 200 },
  });
  await app.ready();
});
afterAll(async () => {
  await app.close();
  await Promise.all([db.$disconnect(), redis.quit(), pool.end()]);
});

/** Busy-waits (the event loop stalls), then lets the sampler run once. */
async function saturate(ms: number): Promise<void> {
  // Align with the sampler: the stall must fall inside one sample.
  await new Promise((r) => setTimeout(r, 210));
  const end = performance.now() + ms;
  while (performance.now() < end) {
    /* the event loop is blocked */
  }
  await new Promise((r) => setTimeout(r, 5));
}

describe("load shedding", () => {
  it("answers 503 OVERLOADED at once to requests beyond the in-flight bound", async () => {
    const bounded = await buildCatalogApp({
      db,
      redis,
      logger: createLogger("shed-test-inflight", "silent"),
      metrics: createMetricsRegistry("shed-test-inflight"),
      adminToken: "test-admin-token-0123456789",
      cache: { schemaVersion: 11_000 + Math.floor(Math.random() * 1000), ttlSeconds: 3600, leaseMs: 2000 },
      shedding: { maxEventLoopDelayMs: 0, maxHeapUsedBytes: 0, maxInFlight: Number(process.env.SHED_TEST_MAX_IN_FLIGHT ?? 2) },
    });
    try {
      const tag = runId();
      const ps = await Promise.all(
        Array.from({ length: 20 }, (_, i) => insertProduct(pool, { sku: `SHED-${tag}-${i}`, listPriceCents: 100, stock: 1 })),
      );
      // 20 misses at once: each is in flight until its Postgres read returns.
      const answers = await Promise.all(ps.map((p) => bounded.inject({ url: `/products/${p.id}` })));
      const shed = answers.filter((a) => a.statusCode === 503);
      expect(answers.filter((a) => a.statusCode === 200).length).toBeGreaterThanOrEqual(2);
      expect(shed.length).toBeGreaterThanOrEqual(10);
      expect(shed[0]?.json()).toMatchObject({ error: "OVERLOADED" });
      expect(shed[0]?.headers["retry-after"]).toBe("1");
      // The bound is released as answers complete: one at a time is always served.
      for (const p of ps.slice(0, 3)) expect((await bounded.inject({ url: `/products/${p.id}` })).statusCode).toBe(200);
    } finally {
      await bounded.close();
    }
  });

  it("answers 503 OVERLOADED with Retry-After while the event loop is saturated, and serves again after", async () => {
    const p = await insertProduct(pool, { sku: `SHED-${runId()}`, listPriceCents: 100, stock: 1 });
    expect((await app.inject({ url: `/products/${p.id}` })).statusCode).toBe(200);

    let shed: Awaited<ReturnType<FastifyInstance["inject"]>> | undefined;
    for (let attempt = 0; attempt < 5 && !shed; attempt++) {
      await saturate(400);
      const res = await app.inject({ url: `/products/${p.id}` });
      if (res.statusCode === 503) shed = res;
    }
    expect(shed?.json()).toMatchObject({ error: "OVERLOADED" });
    expect(shed?.headers["retry-after"]).toBe("1");
    // Health and metrics are never shed (a saturated catalog must still be seen as alive).
    await saturate(400);
    expect((await app.inject({ url: "/healthz" })).statusCode).toBe(200);
    expect((await app.inject({ url: "/metrics" })).body).toMatch(/catalog_shed_requests_total\{reason="eventLoopDelay"[^}]*\} [1-9]/);

    // A calm loop serves again.
    await new Promise((r) => setTimeout(r, 700));
    expect((await app.inject({ url: `/products/${p.id}` })).statusCode).toBe(200);
  });
});
