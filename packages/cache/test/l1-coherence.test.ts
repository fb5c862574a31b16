import { PrivateRedis, redisClient, waitFor } from "@flashsale/testkit";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CacheEvent, VersionedCache } from "../src/cache.ts";
import { invalidateEntity } from "../src/invalidate.ts";
import { keyPrefix } from "../src/keys.ts";
import { L1Invalidations } from "../src/l1-invalidations.ts";
import { type Row, testCache } from "./cache-factory.ts";

// Real Redis server-assisted invalidation (CLIENT TRACKING, BCAST) feeding real L1s.
const SCHEMA = 800_000 + Math.floor(Math.random() * 99_999);
const closers: Array<() => Promise<unknown>> = [];

async function process_(redisUrl?: string, events?: CacheEvent[]) {
  const redis = redisClient(redisUrl);
  const invalidations = new L1Invalidations(redis, keyPrefix(SCHEMA));
  await invalidations.start();
  await waitFor(async () => (invalidations.isUp ? true : undefined), { timeoutMs: 5_000, what: "tracking channel" });
  closers.push(
    () => invalidations.stop(),
    () => redis.quit(),
  );
  const cache = testCache(redis, SCHEMA, { l1: { invalidations, ttlMs: 60_000 }, ...(events ? { events } : {}) });
  return { cache, invalidations, redis };
}

/** Reads until served from L1 (a fill's own SET notification evicts once, so it takes a couple of reads). */
async function untilL1(cache: VersionedCache<Row>, id: number, row: () => Row): Promise<void> {
  await waitFor(async () => ((await cache.get(id, async () => row())).source === "HIT-L1" ? true : undefined), {
    timeoutMs: 5_000,
    what: "an L1 hit",
  });
}

let admin: Redis;
beforeAll(() => {
  admin = redisClient();
});
afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
  await admin.quit();
});

describe("L1 coherence", () => {
  it("evicts the entry in every process's L1 when the invalidator evicts the key", async () => {
    const id = 1;
    const a = await process_();
    const b = await process_();
    let dbVersion = 1;
    const row = () => ({ id, version: dbVersion, validUntil: null });
    await untilL1(a.cache, id, row);
    await untilL1(b.cache, id, row);

    dbVersion = 2; // the row changed in Postgres; the invalidator evicts:
    const evictedAt = performance.now();
    await invalidateEntity(admin, { schemaVersion: SCHEMA, entity: "product", id, version: 2, fenceTtlMs: 60_000 });
    for (const p of [a, b]) {
      const read = await waitFor(
        async () => {
          const r = await p.cache.get(id, async () => row());
          return r.value?.version === 2 ? r : undefined;
        },
        { timeoutMs: 1_000, intervalMs: 1, what: "L1 to drop version 1" },
      );
      expect(read.source).not.toBe("HIT-L1");
    }
    console.log(`L1s of 2 processes coherent ${(performance.now() - evictedAt).toFixed(1)} ms after the eviction`);
  });

  it("expires an L1 entry exactly at validUntil (a sale ending without a write)", async () => {
    const id = 2;
    const p = await process_();
    const endsAt = Date.now() + 700;
    const row = () => (Date.now() < endsAt ? { id, version: 1, validUntil: endsAt } : { id, version: 1, validUntil: null });
    await untilL1(p.cache, id, row);
    let sawOldAfterBoundary = false;
    await waitFor(
      async () => {
        // A read that STARTED at or after the boundary must never return the sale value
        // (one that started before it may legitimately finish just after).
        const startedAt = Date.now();
        const r = await p.cache.get(id, async () => row());
        if (startedAt >= endsAt && r.value?.validUntil === endsAt) sawOldAfterBoundary = true;
        return r.value?.validUntil === null ? true : undefined;
      },
      { timeoutMs: 3_000, intervalMs: 5, what: "the post-sale value" },
    );
    expect(sawOldAfterBoundary).toBe(false);
  });

  it("keeps the L1s of two live schema versions coherent over one channel (a rolling deploy)", async () => {
    const id = 4;
    const redis = redisClient();
    const versions = [SCHEMA, SCHEMA + 1];
    const invalidations = new L1Invalidations(redis, versions.map(keyPrefix));
    await invalidations.start();
    closers.push(
      () => invalidations.stop(),
      () => redis.quit(),
    );
    await waitFor(async () => (invalidations.isUp ? true : undefined), { timeoutMs: 5_000, what: "tracking channel" });
    const caches = versions.map((v) => testCache(redis, v, { l1: { invalidations, ttlMs: 60_000 } }));
    let dbVersion = 1;
    const row = () => ({ id, version: dbVersion, validUntil: null });
    for (const c of caches) await untilL1(c, id, row);

    dbVersion = 2;
    for (const v of versions) await invalidateEntity(admin, { schemaVersion: v, entity: "product", id, version: 2, fenceTtlMs: 60_000 });
    for (const c of caches) {
      await waitFor(async () => ((await c.get(id, async () => row())).value?.version === 2 ? true : undefined), {
        timeoutMs: 1_000,
        intervalMs: 1,
        what: "every version's L1 to drop version 1",
      });
    }
  });

  it("switches L1 off while its invalidation channel is down, flushes it, and back on after reconnecting", async () => {
    const redis = new PrivateRedis(16_400 + Math.floor(Math.random() * 500));
    await redis.start();
    closers.push(() => redis.kill());
    const p = await process_(redis.url);
    const row = () => ({ id: 3, version: 1, validUntil: null });
    await untilL1(p.cache, 3, row);

    await redis.kill();
    await waitFor(async () => (p.invalidations.isUp ? undefined : true), { timeoutMs: 5_000, what: "channel down" });
    const during = await p.cache.get(3, async () => row());
    expect(during.source).toBe("BYPASS"); // not HIT-L1: an L1 that may have missed messages is not used

    await redis.start();
    await waitFor(async () => (p.invalidations.isUp ? true : undefined), { timeoutMs: 15_000, what: "channel back" });
    await untilL1(p.cache, 3, row);
  });
});
