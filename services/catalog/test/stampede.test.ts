import { invalidateEntity } from "@flashsale/cache";
import {
  insertProduct,
  pgPool,
  productReadCount,
  redisClient,
  runId,
  type ServiceProcess,
  spawnService,
  waitFor,
} from "@flashsale/testkit";
import type { Redis } from "ioredis";
import type pg from "pg";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "./fixture.ts";

// Two real catalog processes sharing Redis and Postgres; a hot key is invalidated and
// 1,000 concurrent requests hit it. Postgres counts the reads (pg_stat_statements).
const SCHEMA = 5_000 + Math.floor(Math.random() * 1_000); // our own key space: no other invalidator touches it
let processes: ServiceProcess[] = [];
let pool: pg.Pool;
let redis: Redis;
const agent = new Agent({ connections: 128 });

beforeAll(async () => {
  pool = pgPool();
  redis = redisClient();
  // Free ports, not a fixed range: 3101-3103 are the test stack's own instances (test/stack.env).
  const ports = [await freePort(), await freePort()];
  processes = await Promise.all(ports.map((port) => spawnService("catalog", port, { CACHE_SCHEMA_VERSION: String(SCHEMA) })));
});
afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  await Promise.all([pool.end(), redis.quit(), agent.close()]);
});

async function get(base: string, id: number) {
  const res = await request(`${base}/products/${id}`, { dispatcher: agent, headersTimeout: 10_000, bodyTimeout: 10_000 });
  const body = (await res.body.json()) as { version: number; priceCents: number };
  return { status: res.statusCode, cache: String(res.headers["x-cache"]), version: body.version, price: body.priceCents };
}

describe("stampede", () => {
  it("lets 1,000 concurrent requests over 2 processes cause at most 2 Postgres reads after an invalidation", async () => {
    const p = await insertProduct(pool, { sku: `STAMPEDE-${runId()}`, listPriceCents: 1000, stock: 1 });
    for (const proc of processes) {
      await waitFor(async () => ((await get(proc.url, p.id)).cache === "HIT-L1" ? true : undefined), {
        timeoutMs: 5_000,
        what: "a warm L1",
      });
    }
    const { rows } = await pool.query<{ version: string }>("UPDATE products SET list_price_cents = 1500 WHERE id = $1 RETURNING version", [
      p.id,
    ]);
    const version = Number(rows[0]?.version);
    const before = await productReadCount(pool);

    // What the invalidator does on the change event:
    await invalidateEntity(redis, { schemaVersion: SCHEMA, entity: "product", id: p.id, version, fenceTtlMs: 60_000 });
    // Both processes' L1s drop the key on the pub/sub message this eviction triggers; a
    // request served from a not-yet-evicted L1 would fail the version assertion below.
    const responses = await Promise.all(Array.from({ length: 1000 }, (_, i) => get((processes[i % 2] as ServiceProcess).url, p.id)));
    const reads = (await productReadCount(pool)) - before;
    const sources: Record<string, number> = {};
    for (const r of responses) sources[r.cache] = (sources[r.cache] ?? 0) + 1;
    console.log(`1000 requests after invalidation: ${reads} Postgres read(s); X-Cache ${JSON.stringify(sources)}`);
    expect(responses.every((r) => r.status === 200)).toBe(true);
    expect(responses.every((r) => r.version === version && r.price === 1500)).toBe(true);
    expect(reads).toBeGreaterThanOrEqual(1);
    expect(reads).toBeLessThanOrEqual(2);
  });
});
