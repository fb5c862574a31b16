import { PrivateRedis, waitFor } from "@flashsale/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CacheEvent } from "../src/cache.ts";
import { type FreshnessMode, FreshnessMonitor, publishWatermark, recordSchemaCoverage, redisNowMs } from "../src/freshness.ts";
import { entityKeys, keyPrefix } from "../src/keys.ts";
import { L1Invalidations } from "../src/l1-invalidations.ts";
import { createRedisClient, type RedisClient } from "../src/redis-client.ts";
import { testCache } from "./cache-factory.ts";

// Issue 10 item 2 (docs/architecture.md#cache-protocol, "Bounded staleness"): with the invalidation
// pipeline stalled (no eviction arrives, the watermark stops moving) a changed row must not be
// served from L1 or Redis for longer than Δ (+ one poll). A PRIVATE redis-server: the watermark key
// is global, and CLIENT PAUSE must not touch the shared one.
const DELTA = 400;
const POLL = 50;
const server = new PrivateRedis(19_900 + Math.floor(Math.random() * 400));
let redis: RedisClient;
let admin: Redis;

beforeAll(async () => {
  await server.start();
  redis = createRedisClient({ url: server.url, commandTimeoutMs: 250, failFast: true });
  redis.on("error", () => {});
  admin = new Redis(server.url);
  await waitFor(async () => (redis.status === "ready" ? true : undefined), { timeoutMs: 5_000, what: "redis client ready" });
});
afterAll(async () => {
  redis.disconnect();
  admin.disconnect();
  await server.kill();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The invalidator's watermark while the pipeline is healthy: "everything up to now is applied". */
function publisher() {
  let on = true;
  const loop = (async () => {
    while (on) {
      await publishWatermark(admin, await redisNowMs(admin));
      await sleep(50);
    }
  })();
  return {
    stop: async () => {
      on = false;
      await loop;
    },
  };
}

function monitor(extra: Partial<ConstructorParameters<typeof FreshnessMonitor>[0]> = {}, modes: FreshnessMode[] = []) {
  return new FreshnessMonitor({ redis, deltaMs: DELTA, pollMs: POLL, onModeChange: (m) => modes.push(m), ...extra });
}

describe("the freshness monitor", () => {
  it("trusts while the watermark is younger than Δ, stops within Δ + a poll once it stalls, logs each change once", async () => {
    await admin.del("catalog:freshness:watermark");
    const modes: FreshnessMode[] = [];
    const m = monitor({}, modes);
    await m.start();
    expect(m.trusted).toBe(false); // never published: "old" by default
    const pub = publisher();
    await waitFor(async () => (m.trusted ? true : undefined), { timeoutMs: 1_000, what: "trust" });
    await sleep(600);
    expect(m.trusted).toBe(true); // stays trusted while the watermark moves
    await pub.stop();
    const stalledAt = performance.now();
    await waitFor(async () => (!m.trusted ? true : undefined), { timeoutMs: 2_000, intervalMs: 5, what: "distrust" });
    expect(performance.now() - stalledAt).toBeLessThanOrEqual(DELTA + POLL + 150);
    expect(m.ageMs).toBeGreaterThanOrEqual(DELTA - 60);
    const again = publisher();
    await waitFor(async () => (m.trusted ? true : undefined), { timeoutMs: 1_000, what: "trust again" });
    await again.stop();
    m.stop();
    expect(modes).toEqual(["revalidating", "trusting", "revalidating", "trusting"]);
  });

  it("counts a watermark it cannot read (Redis stalled) as old, on its own clock", async () => {
    const pub = publisher();
    const m = monitor();
    await m.start();
    await waitFor(async () => (m.trusted ? true : undefined), { timeoutMs: 1_000, what: "trust" });
    await pub.stop();
    await publishWatermark(admin, await redisNowMs(admin)); // fresh when the stall begins
    await admin.call("CLIENT", "PAUSE", "1500", "ALL");
    const pausedAt = performance.now();
    await waitFor(async () => (!m.trusted ? true : undefined), { timeoutMs: 1_400, intervalMs: 5, what: "distrust while paused" });
    expect(performance.now() - pausedAt).toBeLessThanOrEqual(DELTA + 150);
    m.stop();
    await sleep(1_200); // let the pause end before the next test
  });

  it("trusts an unpublished watermark only when told to (a development stack without the producer)", async () => {
    await admin.del("catalog:freshness:watermark");
    const old = monitor();
    const fresh = monitor({ unpublished: "fresh" });
    await old.start();
    await fresh.start();
    expect([old.trusted, fresh.trusted, old.isPublished]).toEqual([false, true, false]);
    old.stop();
    fresh.stop();
  });

  it("does not trust a fresh watermark for its schema version until the invalidator covers it (retired its keys)", async () => {
    const pub = publisher();
    const modes: FreshnessMode[] = [];
    try {
      // An invalidator that records coverage runs, covering its own version 50 only.
      await recordSchemaCoverage(admin, { versions: [50], ttlMs: 5_000 });
      const m = monitor({ announce: { schemaVersions: [51], ttlMs: 5_000, everyMs: 1_000 } }, modes);
      const own = monitor({ coveredSchemaVersions: [50] });
      await m.start();
      await own.start();
      await waitFor(async () => (own.trusted ? true : undefined), { timeoutMs: 1_000, what: "the covered version trusted" });
      await sleep(4 * POLL);
      expect([m.trusted, m.uncoveredSchemaVersions]).toEqual([false, [51]]); // watermark fresh, v51 not covered
      expect(m.ageMs).toBeLessThan(DELTA);
      await recordSchemaCoverage(admin, { versions: [50, 51], ttlMs: 5_000 }); // its retire completed
      await waitFor(async () => (m.trusted ? true : undefined), { timeoutMs: 3 * POLL + 100, what: "trust once covered" });
      await recordSchemaCoverage(admin, { versions: [50], dropped: [51], ttlMs: 5_000 }); // no longer evicted
      await waitFor(async () => (!m.trusted ? true : undefined), { timeoutMs: 3 * POLL + 100, what: "distrust once not covered" });
      expect(own.trusted).toBe(true);
      m.stop();
      own.stop();
      expect(modes).toEqual(["revalidating", "trusting", "revalidating"]);
    } finally {
      await pub.stop();
      await admin.del("{catalog:freshness:watermark}:covered");
    }
  });

  it("announces the schema version it serves while running, and stops announcing", async () => {
    const { liveSchemaVersions } = await import("../src/freshness.ts");
    const m = monitor({ announce: { schemaVersions: [41], ttlMs: 300, everyMs: 100 } });
    await m.start();
    await waitFor(async () => ((await liveSchemaVersions(admin)).includes(41) ? true : undefined), { timeoutMs: 1_000, what: "announced" });
    await sleep(500);
    expect(await liveSchemaVersions(admin)).toContain(41); // renewed past its 300 ms TTL
    m.stop();
    await sleep(400);
    expect(await liveSchemaVersions(admin)).not.toContain(41);
  });
});

describe("the bound in the cache", () => {
  it("serves a row changed without an invalidation for at most Δ + a poll from L1 and Redis, probing once per key", async () => {
    const SCHEMA = 3;
    const invalidations = new L1Invalidations(redis, keyPrefix(SCHEMA));
    await invalidations.start();
    const pub = publisher();
    const m = monitor();
    await m.start();
    await waitFor(async () => (m.trusted ? true : undefined), { timeoutMs: 1_000, what: "trust" });
    const row = { id: 1, version: 1 };
    let probes = 0;
    const events: CacheEvent[] = [];
    const cache = testCache(redis, SCHEMA, {
      jitter: 0,
      events,
      l1: { invalidations, ttlMs: 30_000 },
      staleness: {
        gate: m,
        deltaMs: DELTA,
        probeVersion: async () => {
          probes++;
          await sleep(5);
          return row.version;
        },
      },
    });
    const load = async () => ({ ...row });
    try {
      await waitFor(async () => (invalidations.isUp ? true : undefined), { timeoutMs: 3_000, what: "L1 channel up" });
      await cache.get(1, load);
      await waitFor(async () => ((await cache.get(1, load)).source === "HIT-L1" ? true : undefined), { timeoutMs: 2_000, what: "L1" });

      // The pipeline stalls: the watermark stops, and a raw-SQL change (version 2) is never evicted.
      await pub.stop();
      const stalledAt = performance.now();
      row.version = 2;
      let read = await cache.get(1, load);
      while (read.value?.version === 1 && performance.now() - stalledAt < 3_000) {
        await sleep(5);
        read = await cache.get(1, load);
      }
      expect(performance.now() - stalledAt).toBeLessThanOrEqual(DELTA + POLL + 200);
      expect(read.source).toBe("MISS"); // read through…
      expect(events).toContain("revalidate_stale");
      expect(await admin.get(entityKeys(SCHEMA, "product", 1).value)).toBeNull(); // …and evicted for the fleet

      // Still stalled: further reads of an unchanged row are confirmed, one probe per key per Δ.
      await cache.get(1, load); // fills version 2
      const before = probes;
      const reads = await Promise.all(Array.from({ length: 100 }, () => cache.get(1, load)));
      expect(reads.every((r) => r.value?.version === 2 && r.source === "REVALIDATED")).toBe(true);
      expect(probes - before).toBeLessThanOrEqual(1);

      // The pipeline is back: hits are hits again, with no probe.
      const back = publisher();
      await waitFor(async () => (m.trusted ? true : undefined), { timeoutMs: 1_000, what: "trust again" });
      const probesBack = probes;
      await waitFor(async () => ((await cache.get(1, load)).source.startsWith("HIT") ? true : undefined), {
        timeoutMs: 2_000,
        what: "hits",
      });
      expect(probes).toBe(probesBack);
      await back.stop();
    } finally {
      m.stop();
      await invalidations.stop();
    }
  });

  it("reads a hot key found stale through Postgres once, however many L1 hits find it so at once", async () => {
    const invalidations = new L1Invalidations(redis, keyPrefix(6));
    await invalidations.start();
    const gate = { trusted: true };
    let probes = 0;
    let loads = 0;
    const row = { id: 1, version: 1 };
    const cache = testCache(redis, 6, {
      jitter: 0,
      l1: { invalidations, ttlMs: 30_000 },
      staleness: {
        gate,
        deltaMs: DELTA,
        probeVersion: async () => {
          probes++;
          return row.version;
        },
      },
    });
    const load = async () => {
      loads++;
      await sleep(20);
      return { ...row };
    };
    try {
      await waitFor(async () => (invalidations.isUp ? true : undefined), { timeoutMs: 3_000, what: "L1 channel up" });
      await cache.get(1, load);
      await sleep(200); // the fill's own tracking message has gone by
      await cache.get(1, load);
      expect((await cache.get(1, load)).source).toBe("HIT-L1");
      row.version = 2; // changed, never evicted
      gate.trusted = false;
      loads = 0;
      const reads = await Promise.all(Array.from({ length: 50 }, () => cache.get(1, load)));
      expect(reads.every((r) => r.value?.version === 2)).toBe(true);
      expect(probes).toBe(1);
      expect(loads).toBe(1);
    } finally {
      await invalidations.stop();
    }
  });

  it("serves a cached answer marked STALE when the probe cannot reach Postgres", async () => {
    const m = monitor();
    await admin.del("catalog:freshness:watermark");
    await m.start(); // never published: revalidating
    let dbUp = true;
    const cache = testCache(redis, 4, {
      jitter: 0,
      staleness: {
        gate: m,
        deltaMs: DELTA,
        probeVersion: async () => {
          if (!dbUp) throw new Error("connection refused");
          return 1;
        },
      },
    });
    await cache.get(1, async () => ({ id: 1, version: 1 }));
    expect((await cache.get(1, async () => ({ id: 1, version: 1 }))).source).toBe("REVALIDATED");
    dbUp = false;
    await sleep(DELTA + 20); // the confirmation has run out
    expect(await cache.get(1, async () => ({ id: 1, version: 1 }))).toMatchObject({ source: "STALE", value: { version: 1 } });
    m.stop();
  });

  it("serves STALE within the probe timeout when Postgres hangs (a query that never answers)", async () => {
    const m = monitor();
    await admin.del("catalog:freshness:watermark");
    await m.start(); // never published: revalidating
    let hung = false;
    const cache = testCache(redis, 5, {
      jitter: 0,
      staleness: {
        gate: m,
        deltaMs: DELTA,
        probeTimeoutMs: 100,
        // A SIGSTOPped Postgres on an established connection: the query neither answers nor fails.
        probeVersion: () => (hung ? new Promise<number>(() => {}) : Promise.resolve(1)),
      },
    });
    await cache.get(1, async () => ({ id: 1, version: 1 }));
    hung = true;
    await sleep(DELTA + 20); // the confirmation has run out
    const started = performance.now();
    const answers = await Promise.race([
      Promise.all([1, 2, 3].map(() => cache.get(1, async () => ({ id: 1, version: 1 })))),
      sleep(2_000).then(() => "still waiting after 2 s" as const),
    ]);
    expect(answers).not.toBe("still waiting after 2 s");
    expect(performance.now() - started).toBeLessThan(1_000);
    for (const a of answers as { source: string }[]) expect(a).toMatchObject({ source: "STALE", value: { version: 1 } });
    m.stop();
  });
});
