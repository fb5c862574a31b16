/**
 * The periodic consistency job as the invalidator runs it, on a private redis-server and the test
 * database: what it reports must stay honest when a check cannot run, and with more cached
 * products than it checks per run it must still get to all of them.
 */
import { Writable } from "node:stream";
import { createRedisClient, encodeEntry, type RedisClient } from "@flashsale/cache";
import { productKeys } from "@flashsale/product-cache";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { insertProducts, PrivateRedis, pgPool, runId, waitFor } from "@flashsale/testkit";
import type pg from "pg";
import type { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startConsistencyJob } from "../src/consistency-job.ts";

const SCHEMA = 1;
let pool: pg.Pool;
const servers: PrivateRedis[] = [];
const clients: RedisClient[] = [];
const jobs: Array<{ stop(): void }> = [];

beforeAll(() => {
  pool = pgPool();
});
afterAll(async () => {
  for (const j of jobs) j.stop();
  for (const c of clients) c.disconnect();
  for (const s of servers) await s.kill();
  await pool.end();
});

/** A private redis-server holding a stale entry (version 0; the rows have 1) for each of `n` new products. */
async function staleCache(n: number): Promise<{ server: PrivateRedis; redis: RedisClient; ids: number[] }> {
  const server = new PrivateRedis(18_300 + Math.floor(Math.random() * 500));
  servers.push(server);
  await server.start();
  // As the invalidator's main.ts builds its client.
  const redis = createRedisClient({ url: server.url, commandTimeoutMs: 250, failFast: false });
  redis.on("error", () => {});
  clients.push(redis);
  const rows = await insertProducts(
    pool,
    Array.from({ length: n }, () => ({ sku: `CJ-${runId()}`, listPriceCents: 100, stock: 1 })),
  );
  for (const r of rows) {
    const entry = {
      version: 0,
      storedAt: Date.now(),
      expiresAt: Date.now() + 60_000,
      delta: 1,
      value: { id: r.id, version: 0, listPriceCents: 1, sale: null },
    };
    await redis.set(productKeys(SCHEMA, r.id).value, encodeEntry(entry), "PX", 60_000);
  }
  return { server, redis, ids: rows.map((r) => r.id) };
}

function job(redis: RedisClient, maxKeys: number) {
  const metrics = createMetricsRegistry("consistency-job-test");
  const found: number[][] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      const line = JSON.parse(String(chunk)) as { inconsistent?: Array<{ productId: number }> };
      if (line.inconsistent) found.push(line.inconsistent.map((i) => i.productId));
      done();
    },
  });
  const logger = createLogger("consistency-job-test", "warn", sink);
  jobs.push(startConsistencyJob({ redis, pool, schemaVersions: () => [SCHEMA], intervalMs: 50, maxKeys, metrics, logger }));
  return { metrics, found };
}

async function value(metrics: Registry, name: string): Promise<number | undefined> {
  return (await metrics.getSingleMetric(name)?.get())?.values[0]?.value;
}

describe("consistency job", () => {
  it("over successive runs checks every cached product, not the same first maxKeys of SCAN order", async () => {
    const { redis, ids } = await staleCache(10);
    const { found } = job(redis, 3);
    const seen = await waitFor(
      async () => {
        const s = new Set(found.flat());
        return ids.every((id) => s.has(id)) ? s : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 50, what: "every stale product reported" },
    ).catch(() => new Set(found.flat()));
    expect([...seen].sort()).toEqual([...ids].sort());
  });

  it("a check that cannot run is counted and reports 0 keys checked, not the last result", async () => {
    const { server, redis, ids } = await staleCache(2);
    const { metrics } = job(redis, 100);
    await waitFor(async () => ((await value(metrics, "cache_consistency_keys_checked")) === ids.length ? true : undefined), {
      timeoutMs: 10_000,
      what: "a first successful check",
    });
    const succeededAt = await value(metrics, "cache_consistency_last_success_timestamp_seconds");
    expect(succeededAt).toBeGreaterThan(0);

    await server.kill();
    await waitFor(async () => ((await value(metrics, "cache_consistency_check_failures_total")) ?? 0) >= 2 || undefined, {
      timeoutMs: 10_000,
      what: "failed checks counted",
    });
    expect(await value(metrics, "cache_consistency_keys_checked")).toBe(0);
    expect(await value(metrics, "cache_consistency_last_success_timestamp_seconds")).toBe(succeededAt);
  });

  it("finds and repairs (evicts) what the pipeline can leave behind: a changed price at the same version, a deleted row, and counts each repair", async () => {
    const server = new PrivateRedis(18_800 + Math.floor(Math.random() * 150));
    servers.push(server);
    await server.start();
    const redis = createRedisClient({ url: server.url, commandTimeoutMs: 250, failFast: false });
    redis.on("error", () => {});
    clients.push(redis);
    // A row last written a minute ago, cached with its own version but another price (a write that did not move the version).
    const { rows } = await pool.query<{ id: string; version: string }>(
      "INSERT INTO products (sku, name, list_price_cents, updated_at) VALUES ($1, $1, 500, now() - interval '1 minute') RETURNING id, version",
      [`CJ-SAMEV-${runId()}`],
    );
    const same = { id: Number(rows[0]?.id), version: Number(rows[0]?.version) };
    // A product cached a minute ago whose row is gone (a delete or TRUNCATE whose eviction was lost).
    const goneId = 2_000_000_000 + Math.floor(Math.random() * 1_000_000);
    const entry = (id: number, version: number, listPriceCents: number) =>
      encodeEntry({
        version,
        storedAt: Date.now() - 60_000,
        expiresAt: Date.now() + 60_000,
        delta: 1,
        value: { id, version, listPriceCents, sale: null },
      });
    await redis.set(productKeys(SCHEMA, same.id).value, entry(same.id, same.version, 400), "PX", 60_000);
    await redis.set(productKeys(SCHEMA, goneId).value, entry(goneId, 7, 100), "PX", 60_000);

    const { metrics, found } = job(redis, 100);
    await waitFor(
      async () => ((await redis.exists(productKeys(SCHEMA, same.id).value, productKeys(SCHEMA, goneId).value)) === 0 ? true : undefined),
      {
        timeoutMs: 10_000,
        what: "both stale values evicted",
      },
    );
    expect(new Set(found.flat())).toEqual(new Set([same.id, goneId]));
    expect(await value(metrics, "cache_consistency_repairs_total")).toBe(2);
  });
});
