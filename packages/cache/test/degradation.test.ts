import { PrivateRedis, waitFor } from "@flashsale/testkit";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import type { CacheRead } from "../src/cache.ts";
import { type Row, testCache } from "./cache-factory.ts";

// Redis killed (-9) in the middle of a read load, then restarted: a real redis-server
// of this test's own, so the shared stack is not disturbed.
const FALLBACK_LIMIT = 4;
const redisServer = new PrivateRedis(16_900 + Math.floor(Math.random() * 500));

afterAll(async () => {
  await redisServer.kill();
});

describe("Redis failure", () => {
  it("keeps answering from Postgres with BYPASS under bounded concurrency, then resumes hits without serving stale values", async () => {
    await redisServer.start();
    // As the catalog configures it: fail fast instead of queueing while Redis is away.
    const redis = new Redis(redisServer.url, {
      commandTimeout: 250,
      connectTimeout: 500,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      lazyConnect: true,
    });
    redis.on("error", () => {});
    await redis.connect();
    const cache = testCache(redis, 1, {
      fallbackReads: { limit: FALLBACK_LIMIT, queue: 10_000 },
      breaker: { consecutiveFailures: 3, halfOpenAfterMs: 300 },
    });

    // "Postgres": one version per row, counting concurrent reads.
    const dbVersion = new Map<number, number>();
    let concurrent = 0;
    let maxConcurrentWhileDown = 0;
    let redisDown = false;
    const load = (id: number) => async () => {
      concurrent++;
      if (redisDown) maxConcurrentWhileDown = Math.max(maxConcurrentWhileDown, concurrent);
      await new Promise((r) => setTimeout(r, 3));
      concurrent--;
      return { id, version: dbVersion.get(id) ?? 1 };
    };
    const burst = (n: number) => Promise.all(Array.from({ length: n }, (_, i) => cache.get(i % 50, load(i % 50))));

    const warm = await burst(200);
    expect(warm.every((r) => r.value !== null)).toBe(true);
    expect((await burst(200)).every((r) => r.source === "HIT")).toBe(true);

    await redisServer.kill();
    redisDown = true;
    for (let id = 0; id < 50; id++) dbVersion.set(id, 2); // rows change while Redis is away
    const outage: CacheRead<Row>[] = [];
    for (let round = 0; round < 5; round++) outage.push(...(await burst(200)));
    expect(outage.every((r) => r.source === "BYPASS" && r.value?.version === 2)).toBe(true);
    expect(maxConcurrentWhileDown).toBeLessThanOrEqual(FALLBACK_LIMIT);
    expect(cache.redisCircuit).toBe("open");

    await redisServer.start();
    redisDown = false;
    const back = await waitFor(
      async () => {
        const reads = await burst(200);
        expect(reads.every((r) => r.value?.version === 2)).toBe(true); // never the pre-outage version
        return reads.some((r) => r.source === "HIT") ? reads : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 100, what: "cache hits after Redis is back" },
    );
    expect(back.length).toBe(200);
    redis.disconnect();
  });
});
