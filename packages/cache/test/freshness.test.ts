import { redisClient, waitFor } from "@flashsale/testkit";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CacheEvent, VersionedCache, VersionedCacheOptions } from "../src/cache.ts";
import { invalidateEntity } from "../src/invalidate.ts";
import { type Row, testCache } from "./cache-factory.ts";

// Early refresh, stale-while-revalidate and stale-if-error, on real Redis.
const SCHEMA = 700_000 + Math.floor(Math.random() * 99_999);
let nextId = 1;
let redis: Redis;

beforeAll(() => {
  redis = redisClient();
});
afterAll(async () => {
  await redis.quit();
});

function cache(events: CacheEvent[], extra: Partial<VersionedCacheOptions<Row>>): VersionedCache<Row> {
  return testCache(redis, SCHEMA, { jitter: 0, events, ...extra });
}

const until = (ms: number) =>
  waitFor(async () => (Date.now() >= ms ? true : undefined), { timeoutMs: ms - Date.now() + 2_000, what: "the clock" });

describe("freshness rules", () => {
  it("refreshes a hot key early (XFetch) while still serving hits", async () => {
    const id = nextId++;
    const events: CacheEvent[] = [];
    // A huge beta makes the early refresh certain on the first hit, for a deterministic test.
    const c = cache(events, { ttlMs: 10_000, earlyRefreshBeta: 1e9 });
    let version = 1;
    await c.get(id, async () => ({ id, version }));
    version = 2;
    const hit = await c.get(id, async () => ({ id, version }));
    expect(hit.source).toBe("HIT");
    expect(hit.value?.version).toBe(1);
    expect(events).toContain("early_refresh");
    await waitFor(async () => ((await c.get(id, async () => ({ id, version }))).value?.version === 2 ? true : undefined), {
      timeoutMs: 2_000,
      what: "the refreshed value",
    });
  });

  it("serves STALE once after a TTL expiry while refreshing, but never after an invalidation", async () => {
    const id = nextId++;
    const events: CacheEvent[] = [];
    const c = cache(events, { ttlMs: 200, staleGraceMs: 10_000, earlyRefreshBeta: 0 });
    let version = 1;
    await c.get(id, async () => ({ id, version }));
    await until(Date.now() + 250);
    version = 2;
    const stale = await c.get(id, async () => ({ id, version }));
    expect(stale.source).toBe("STALE");
    expect(stale.value?.version).toBe(1);
    await waitFor(async () => ((await c.get(id, async () => ({ id, version }))).value?.version === 2 ? true : undefined), {
      timeoutMs: 2_000,
      what: "the revalidated value",
    });

    await until(Date.now() + 250); // expired again, but this time the row changes and is invalidated
    version = 3;
    await invalidateEntity(redis, { schemaVersion: SCHEMA, entity: "product", id, version: 3, fenceTtlMs: 60_000 });
    const afterInvalidation = await c.get(id, async () => ({ id, version }));
    expect(afterInvalidation.source).toBe("MISS");
    expect(afterInvalidation.value?.version).toBe(3);
  });

  it("keeps answering STALE within the grace window while Postgres is down (stale-if-error), never after an invalidation", async () => {
    const id = nextId++;
    const events: CacheEvent[] = [];
    const c = cache(events, { ttlMs: 150, staleGraceMs: 10_000, earlyRefreshBeta: 0 });
    await c.get(id, async () => ({ id, version: 1 }));
    await until(Date.now() + 200);
    let dbCalls = 0;
    const dbDown = async (): Promise<Row> => {
      dbCalls++;
      throw new Error("connection refused");
    };
    for (let i = 0; i < 5; i++) expect(await c.get(id, dbDown)).toMatchObject({ source: "STALE", value: { version: 1 } });
    expect(dbCalls).toBeLessThanOrEqual(1); // the failed refresh holds the lease: no hammering of a sick DB

    await invalidateEntity(redis, { schemaVersion: SCHEMA, entity: "product", id, version: 2, fenceTtlMs: 60_000 });
    await expect(c.get(id, dbDown)).rejects.toThrow("connection refused");
  });
});
