import { PrivateRedis, waitFor } from "@flashsale/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CacheEvent } from "../src/cache.ts";
import { invalidateEntity, sweepFences } from "../src/invalidate.ts";
import { entityKeys } from "../src/keys.ts";
import { createRedisClient, type RedisClient } from "../src/redis-client.ts";
import { type Row, testCache } from "./cache-factory.ts";

// Issue 12 item 4 (docs/architecture.md#failure-modes): a fence is what refuses a fill that read the
// row before a change. Memory pressure (maxmemory + volatile-lfu) or a Redis restart (kill -9, no
// persistence) must not let that fill through. A PRIVATE redis-server, never the shared one.
const server = new PrivateRedis(19_300 + Math.floor(Math.random() * 500));
let redis: RedisClient;
let admin: Redis;

beforeAll(async () => {
  await server.start();
  redis = createRedisClient({ url: server.url, commandTimeoutMs: 500, failFast: true });
  redis.on("error", () => {});
  admin = new Redis(server.url, { maxRetriesPerRequest: null });
  admin.on("error", () => {});
  await waitFor(async () => (redis.status === "ready" ? true : undefined), { timeoutMs: 5_000, what: "redis client ready" });
});
afterAll(async () => {
  redis.disconnect();
  admin.disconnect();
  await server.kill();
});

/** A lease holder whose DB read is held open until `release` (it read version 1, before the write). */
async function slowReader(id: number, events: CacheEvent[] = []) {
  const cache = testCache(redis, 1, { jitter: 0, events });
  let release: (row: Row) => void = () => {};
  let loading = false;
  const reading = cache.get(
    id,
    () =>
      new Promise<Row>((resolve) => {
        loading = true;
        release = resolve;
      }),
  );
  await waitFor(async () => (loading ? true : undefined), { timeoutMs: 3_000, what: "the lease holder's DB read" });
  return { reading, release: (row: Row) => release(row), cache };
}

describe("fences memory pressure cannot evict", () => {
  it("keeps the fence through maxmemory volatile-lfu eviction, so the pre-write fill is refused", async () => {
    await admin.config("SET", "maxmemory", "3mb");
    await admin.config("SET", "maxmemory-policy", "volatile-lfu");
    try {
      const id = 1;
      const k = entityKeys(1, "product", id);
      const reader = await slowReader(id);
      await invalidateEntity(admin, { schemaVersion: 1, entity: "product", id, version: 2, fenceTtlMs: 60_000 });
      // Pressure: ~20 MB of cache values (with TTLs, as every value has) through a 3 MB Redis.
      const blob = "x".repeat(10_000);
      for (let i = 0; i < 2_000; i += 100) {
        const p = admin.pipeline();
        for (let j = i; j < i + 100; j++) p.set(`catalog:v1:{product:${1_000 + j}}`, blob, "PX", 600_000);
        await p.exec();
      }
      expect(Number((await admin.info("stats")).match(/evicted_keys:(\d+)/)?.[1])).toBeGreaterThan(1_000);
      expect(await admin.get(k.fence)).toBe("2");
      reader.release({ id, version: 1 });
      await reader.reading;
      expect(await admin.get(k.value)).toBeNull();
    } finally {
      await admin.config("SET", "maxmemory", "0");
      await admin.flushall();
    }
  });

  it("collects a fence once its time is up (the sweeper), and keeps one raised since", async () => {
    await invalidateEntity(admin, { schemaVersion: 1, entity: "product", id: 50, version: 3, fenceTtlMs: 1 });
    await invalidateEntity(admin, { schemaVersion: 1, entity: "product", id: 51, version: 3, fenceTtlMs: 60_000 });
    expect(await admin.pttl(entityKeys(1, "product", 50).fence)).toBe(-1); // no TTL: never evicted
    await new Promise((r) => setTimeout(r, 5));
    expect(await sweepFences(admin)).toBe(1);
    expect(await admin.get(entityKeys(1, "product", 50).fence)).toBeNull();
    expect(await admin.get(entityKeys(1, "product", 51).fence)).toBe("3");
  });
});

describe("fills across a Redis restart", () => {
  it("refuses a fill whose lease was granted before Redis restarted (kill -9) and lost its fences", async () => {
    const id = 7;
    const k = entityKeys(1, "product", id);
    const events: CacheEvent[] = [];
    const reader = await slowReader(id, events);
    await invalidateEntity(admin, { schemaVersion: 1, entity: "product", id, version: 2, fenceTtlMs: 60_000 });
    await server.kill();
    await server.start(); // empty: fence, lease and value are gone
    await waitFor(async () => (redis.status === "ready" && (await admin.ping()) === "PONG" ? true : undefined), {
      timeoutMs: 10_000,
      what: "clients reconnected",
    });
    // A reader in the new incarnation takes the lease and is still reading when the old fill lands.
    const fresh = await slowReader(id);
    reader.release({ id, version: 1 });
    expect((await reader.reading).value?.version).toBe(1); // the old reader gets its DB answer…
    expect(events).toContain("fill_refused"); // …but Redis refuses to cache it
    expect(await admin.get(k.value)).toBeNull();
    fresh.release({ id, version: 2 });
    await fresh.reading;
    expect(JSON.parse((await admin.get(k.value)) ?? "{}").version).toBe(2);
  });

  it("refuses it too when nobody has read the key since the restart", async () => {
    const id = 8;
    const k = entityKeys(1, "product", id);
    const events: CacheEvent[] = [];
    const reader = await slowReader(id, events);
    await server.kill();
    await server.start();
    await waitFor(async () => (redis.status === "ready" && (await admin.ping()) === "PONG" ? true : undefined), {
      timeoutMs: 10_000,
      what: "clients reconnected",
    });
    reader.release({ id, version: 1 });
    await reader.reading;
    expect(events).toContain("fill_refused");
    expect(await admin.get(k.value)).toBeNull();
  });
});
