/**
 * Which cache schema versions the invalidator must retire (docs/architecture.md#invalidator), with a
 * real Redis (a private redis-server): a version announced while no invalidator ran was evicted by
 * nobody, so its keys may hold prices changed since; the first read must report it like a version
 * that appears later (review: a catalog on v3 started while the invalidator restarted served a price
 * changed 10 s earlier from its v3 key, as a HIT with a fresh watermark, until the TTL).
 */
import { announceSchemaVersion } from "@flashsale/cache";
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
});
