/**
 * The freshness watermark producer with a real Redis (private redis-server) and Postgres (the test
 * database, for the DB clock only): nothing is published until every partition has applied a
 * heartbeat; then the watermark is the minimum over partitions, moved to Redis's clock by no more
 * than the measured offset's lower bound, minus the commit-order slack; it never moves back.
 */
import { FRESHNESS_KEYS, redisNowMs } from "@flashsale/cache";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { PrivateRedis, pgPool, waitFor } from "@flashsale/testkit";
import { Redis } from "ioredis";
import { Partitioners } from "kafkajs";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { COMMIT_ORDER_SLACK_MS, heartbeatIdsFor, startWatermarkProducer } from "../src/watermark.ts";

let server: PrivateRedis;
let redis: Redis;
let pool: pg.Pool;
const logger = createLogger("watermark-test", "silent");

beforeAll(async () => {
  server = new PrivateRedis(19_600 + Math.floor(Math.random() * 300));
  await server.start();
  redis = new Redis(server.url);
  pool = pgPool();
});
afterAll(async () => {
  redis.disconnect();
  await server.kill();
  await pool.end();
});

const dbNowMs = async () => Number((await pool.query("SELECT extract(epoch FROM clock_timestamp()) * 1000 AS ms")).rows[0].ms);
const published = async () => {
  const v = await redis.get(FRESHNESS_KEYS.watermark);
  return v === null ? null : Number(v);
};

describe("watermark producer", () => {
  it("publishes the minimum over ALL partitions, on Redis's clock, never ahead of it, never backwards", async () => {
    const producer = startWatermarkProducer({ redis, pool, topic: "t-wm", partitions: 3, metrics: createMetricsRegistry("wm"), logger });
    try {
      // The clock offset is measured first (nothing can be published without it).
      await new Promise((r) => setTimeout(r, 500));
      const t = await dbNowMs();
      await producer.heartbeatApplied(0, t);
      await producer.heartbeatApplied(1, t + 50);
      expect(await published()).toBeNull(); // partition 2 never heard from: it may hold an unapplied change
      await producer.heartbeatApplied(2, t - 300);
      const w = await waitFor(async () => (await published()) ?? undefined, { timeoutMs: 2_000, what: "a watermark" });
      // The minimum (t - 300), converted with an offset that can only be smaller than the true one.
      const redisNow = await redisNowMs(redis);
      const dbNow = await dbNowMs();
      const trueOffsetUpperBound = (await redisNowMs(redis)) - dbNow; // Redis read after the DB read: >= true offset
      expect(w).toBeLessThanOrEqual(t - 300 + trueOffsetUpperBound - COMMIT_ORDER_SLACK_MS);
      expect(w).toBeGreaterThan(t - 300 - 1_000 + (redisNow - dbNow)); // and not absurdly old
      // An older heartbeat (replayed) never moves it back.
      await producer.heartbeatApplied(2, t - 5_000);
      expect(await published()).toBe(w);
      await producer.heartbeatApplied(2, t + 100);
      await producer.heartbeatApplied(0, t + 100);
      await producer.heartbeatApplied(1, t + 100);
      expect(await published()).toBeGreaterThan(w);
    } finally {
      producer.stop();
    }
  });

  it("once partitions are added, waits for the new ones before moving again", async () => {
    const producer = startWatermarkProducer({
      redis,
      pool,
      topic: "t-wm-grow",
      partitions: 2,
      metrics: createMetricsRegistry("wm2"),
      logger,
    });
    try {
      await new Promise((r) => setTimeout(r, 500));
      const t = await dbNowMs();
      await producer.heartbeatApplied(0, t);
      await producer.heartbeatApplied(1, t);
      const w = await waitFor(async () => (await published()) ?? undefined, { timeoutMs: 2_000, what: "a watermark" });
      producer.setPartitions(3);
      await producer.heartbeatApplied(0, t + 1_000);
      await producer.heartbeatApplied(1, t + 1_000);
      expect(await published()).toBe(w); // partition 2 never heard from
      await producer.heartbeatApplied(2, t + 1_000);
      expect(await published()).toBeGreaterThan(w);
    } finally {
      producer.stop();
    }
  });

  it("keeps a heartbeat row id for every partition (by the producer's key partitioner; e2e checks Connect agrees: no watermark otherwise)", () => {
    for (const n of [1, 3, 6, 12]) {
      const ids = heartbeatIdsFor(n);
      expect([...ids.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
      const partitioner = Partitioners.DefaultPartitioner();
      const partitionMetadata = Array.from({ length: n }, (_, i) => ({
        partitionId: i,
        leader: 0,
        partitionErrorCode: 0,
        replicas: [0],
        isr: [0],
      }));
      for (const [p, id] of ids)
        expect(partitioner({ topic: "x", partitionMetadata, message: { key: JSON.stringify({ id }), value: null } })).toBe(p);
    }
  });
});
