/**
 * Which cache schema versions the invalidator must retire (docs/architecture.md#invalidator), with a
 * real Redis (a private redis-server): a version announced while no invalidator ran was evicted by
 * nobody, so its keys may hold prices changed since; the first read must report it like a version
 * that appears later (review: a catalog on v3 started while the invalidator restarted served a price
 * changed 10 s earlier from its v3 key, as a HIT with a fresh watermark, until the TTL).
 */
import { announceSchemaVersion, publishWatermark, readFreshness, redisNowMs } from "@flashsale/cache";
import { createLogger } from "@flashsale/telemetry";
import { PrivateRedis } from "@flashsale/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { trackSchemaVersions } from "../src/schema-versions.ts";

let server: PrivateRedis;
let redis: Redis;
const logger = createLogger("schema-versions-test", "silent");

beforeAll(async () => {
  server = new PrivateRedis(19_900 + Math.floor(Math.random() * 90));
  await server.start();
  redis = new Redis(server.url);
});
afterAll(async () => {
  redis.disconnect();
  await server.kill();
});

describe("trackSchemaVersions", () => {
  it("reports the versions announced before its first read (all but its own), then each new one once", async () => {
    await announceSchemaVersion(redis, 2, 5_000);
    await announceSchemaVersion(redis, 3, 5_000);
    const added: number[][] = [];
    const t = trackSchemaVersions({ redis, own: 2, refreshMs: 60_000, logger, onAdded: (v) => added.push(v) });
    try {
      await t.refresh();
      expect(t.current()).toEqual([2, 3]);
      expect(added).toEqual([[3]]); // v3 was evicted by nobody before us: retire its keys
      await t.refresh();
      expect(added).toEqual([[3]]); // not again
      await announceSchemaVersion(redis, 4, 5_000);
      await t.refresh();
      expect(added).toEqual([[3], [4]]);
    } finally {
      t.stop();
    }
  });

  it("covers its own version from the start, a newly announced one only once its retire completed, and lapses when stopped or dead", async () => {
    await publishWatermark(redis, await redisNowMs(redis));
    const uncovered = async (...v: number[]) => (await readFreshness(redis, v)).uncovered;
    await announceSchemaVersion(redis, 7, 5_000);
    const added: number[][] = [];
    const t = trackSchemaVersions({ redis, own: 6, refreshMs: 60_000, coverageTtlMs: 1_000, logger, onAdded: (v) => added.push(v) });
    await t.refresh();
    expect(added[0]).toContain(7); // being evicted, retire pending
    expect(await uncovered(6, 7)).toEqual([7]);
    await t.refresh();
    expect(await uncovered(6, 7)).toEqual([7]); // renewing does not cover it either
    await t.markCovered([7]); // the retire completed
    expect(await uncovered(6, 7)).toEqual([]);
    expect(t.covered()).toContain(7);
    await t.stop(); // no longer evicting: no longer covered, at once
    expect(await uncovered(6, 7)).toEqual([6, 7]);

    // A dead invalidator (never stopped, nothing renewed) loses its coverage on Redis's clock.
    const dead = trackSchemaVersions({ redis, own: 8, refreshMs: 60_000, coverageTtlMs: 300, logger });
    await dead.refresh();
    expect(await uncovered(8)).toEqual([]);
    await new Promise((r) => setTimeout(r, 400));
    expect(await uncovered(8)).toEqual([8]);
    await dead.stop();
  });

  it("drops the coverage of a version nobody announces any more, and retires it again if it comes back", async () => {
    await publishWatermark(redis, await redisNowMs(redis));
    await announceSchemaVersion(redis, 10, 300);
    const added: number[][] = [];
    const t = trackSchemaVersions({ redis, own: 9, refreshMs: 60_000, logger, onAdded: (v) => added.push(v) });
    try {
      await t.refresh();
      await t.markCovered([10]);
      expect((await readFreshness(redis, [10])).uncovered).toEqual([]);
      await new Promise((r) => setTimeout(r, 400)); // the announcement expires
      await t.refresh();
      expect(t.current()).not.toContain(10);
      expect((await readFreshness(redis, [10])).uncovered).toEqual([10]);
      await announceSchemaVersion(redis, 10, 5_000);
      await t.refresh();
      expect(added.filter((a) => a.includes(10))).toHaveLength(2);
      expect((await readFreshness(redis, [10])).uncovered).toEqual([10]); // until retired again
    } finally {
      await t.stop();
    }
  });
});
