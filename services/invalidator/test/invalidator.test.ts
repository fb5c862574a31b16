/**
 * The invalidator against real Kafka and Redis, fed crafted Debezium-shaped events on
 * topics of its own (no Debezium needed here; the e2e suite covers the real connector):
 * poison events go to the dead-letter topic without stopping it, an outage of Redis
 * delays evictions but loses none, and a restart resumes from the committed offsets.
 */
import { announceSchemaVersion, entityKeys, FRESHNESS_KEYS } from "@flashsale/cache";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { insertProduct, PrivateRedis, pgPool, redisClient, runId, TEST_ENV, waitFor } from "@flashsale/testkit";
import { Redis } from "ioredis";
import { type Consumer, Kafka, logLevel, Partitioners, type Producer } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DELETE_FENCE_VERSION } from "../src/change-event.ts";
import { type InvalidatorOptions, type RunningInvalidator, startInvalidator } from "../src/consumer.ts";

const SCHEMA = 2_000 + Math.floor(Math.random() * 1_000);
const kafka = new Kafka({ brokers: TEST_ENV.kafkaBrokers, clientId: "invalidator-test", logLevel: logLevel.NOTHING });
const logger = createLogger("invalidator-test", "silent");
let producer: Producer;
const running: RunningInvalidator[] = [];

beforeAll(async () => {
  producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
});
afterAll(async () => {
  for (const r of running) await r.stop().catch(() => {});
  await producer.disconnect();
});

const productEvent = (id: number, version: number) => ({
  key: JSON.stringify({ id }),
  value: JSON.stringify({ before: null, after: { id, version }, source: { table: "products", ts_ms: Date.now() }, op: "u" }),
});

async function start(
  prefix: string,
  redis: Redis,
  groupId: string,
  metrics = createMetricsRegistry("invalidator-test"),
  extra: Partial<InvalidatorOptions> = {},
): Promise<RunningInvalidator> {
  const r = await startInvalidator({
    ...extra,
    kafka,
    redis,
    logger,
    metrics,
    groupId,
    topicPrefix: prefix,
    schemaVersion: SCHEMA,
    fenceTtlMs: 600_000,
  });
  running.push(r);
  return r;
}

/** The fence of a product, or null (also while the client reconnects to a restarted Redis). */
const fenceOf = (r: Redis, id: number) => r.get(entityKeys(SCHEMA, "product", id).fence).catch(() => null);

describe("invalidator", () => {
  it("dead-letters poison events with the reason and keeps consuming", async () => {
    const prefix = `itest-${runId()}`;
    const redis = redisClient();
    await start(prefix, redis, `g-${runId()}`);
    const topic = `${prefix}.public.products`;
    await producer.send({
      topic,
      messages: [
        { key: '{"id":1}', value: "{not json" },
        { key: '{"id":2}', value: JSON.stringify({ after: { id: 2, version: 1 }, source: { table: "orders", ts_ms: 1 }, op: "u" }) },
        { key: '{"id":3}', value: JSON.stringify({ after: { id: 3, version: "x" }, source: { table: "products", ts_ms: 1 }, op: "u" }) },
        { key: '{"id":4}', value: "x".repeat(600 * 1024) },
        productEvent(5, 7),
      ],
    });
    await waitFor(async () => ((await fenceOf(redis, 5)) === "7" ? true : undefined), {
      timeoutMs: 30_000,
      what: "the valid event after the poison ones",
    });

    const dlq: { value: string; reason: string }[] = [];
    const reader: Consumer = kafka.consumer({ groupId: `dlq-reader-${runId()}` });
    await reader.connect();
    await reader.subscribe({ topic: `${prefix}.invalidator.dlq`, fromBeginning: true });
    await reader.run({
      eachMessage: async ({ message }) => {
        dlq.push({ value: message.value?.toString().slice(0, 20) ?? "", reason: message.headers?.reason?.toString() ?? "" });
      },
    });
    await waitFor(async () => (dlq.length >= 4 ? true : undefined), { timeoutMs: 30_000, what: "4 dead letters" });
    await reader.disconnect();
    // Different keys, different partitions: no order across them.
    expect(dlq.map((d) => d.reason.replace(/\d+ bytes/, "N bytes")).sort()).toEqual(
      [
        "value is not JSON",
        'event for table "orders" on the products topic',
        'row version "x" is not a positive integer',
        "event of N bytes exceeds 262144",
      ].sort(),
    );
    await redis.quit();
  });

  it("retries while Redis is down and drops nothing", async () => {
    const prefix = `itest-${runId()}`;
    const server = new PrivateRedis(17_500 + Math.floor(Math.random() * 400));
    await server.start();
    const redis = new Redis(server.url, { commandTimeout: 250, connectTimeout: 250, maxRetriesPerRequest: 1 });
    redis.on("error", () => {});
    const metrics = createMetricsRegistry("invalidator-test");
    await start(prefix, redis, `g-${runId()}`, metrics);
    await producer.send({ topic: `${prefix}.public.products`, messages: [productEvent(10, 1)] });
    await waitFor(async () => ((await fenceOf(redis, 10)) === "1" ? true : undefined), { timeoutMs: 30_000, what: "first eviction" });

    await server.kill();
    await producer.send({ topic: `${prefix}.public.products`, messages: [productEvent(11, 3), productEvent(12, 4)] });
    const retries = async () => (await metrics.getSingleMetric("invalidator_redis_retries_total")?.get())?.values[0]?.value ?? 0;
    await waitFor(async () => ((await retries()) >= 2 ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: "evictions failing while Redis is down",
    });
    await server.start(); // empty: only a retried eviction can put these fences there
    await waitFor(async () => ((await fenceOf(redis, 11)) === "3" && (await fenceOf(redis, 12)) === "4" ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 100,
      what: "the evictions made while Redis was down",
    });
    redis.disconnect();
    await server.kill();
  });

  it("resumes from the committed offsets after a restart, replaying what it missed", async () => {
    const prefix = `itest-${runId()}`;
    const group = `g-${runId()}`;
    const redis = redisClient();
    const first = await start(prefix, redis, group);
    await producer.send({ topic: `${prefix}.public.products`, messages: [productEvent(20, 1)] });
    await waitFor(async () => ((await fenceOf(redis, 20)) === "1" ? true : undefined), {
      timeoutMs: 30_000,
      what: "eviction before the stop",
    });
    await first.stop();

    await producer.send({ topic: `${prefix}.public.products`, messages: [productEvent(21, 2), productEvent(22, 5)] });
    await start(prefix, redis, group);
    await waitFor(async () => ((await fenceOf(redis, 21)) === "2" && (await fenceOf(redis, 22)) === "5" ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 100,
      what: "events produced while the invalidator was down",
    });
    await redis.quit();
  });

  it("scales out: two instances in one group share the partitions and every key ends at its latest version", async () => {
    const prefix = `itest-${runId()}`;
    const group = `g-${runId()}`;
    const redis = redisClient();
    const registries = [createMetricsRegistry("a"), createMetricsRegistry("b")];
    const a = await start(prefix, redis, group, registries[0]);
    const b = await start(prefix, redis, group, registries[1]);
    // Produce only once the group has settled with both members.
    const admin = kafka.admin();
    await admin.connect();
    await waitFor(
      async () => {
        const { groups } = await admin.describeGroups([group]);
        const g = groups[0];
        return a.isConsuming() && b.isConsuming() && g?.state === "Stable" && g.members.length === 2 ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: "a stable group of two" },
    );
    await admin.disconnect();
    // Keyed by primary key, so each key's versions stay in one partition, in order.
    const messages = [];
    for (let version = 1; version <= 10; version++) for (let id = 100; id < 120; id++) messages.push(productEvent(id, version));
    await producer.send({ topic: `${prefix}.public.products`, messages });
    await waitFor(
      async () => {
        const fences = await Promise.all(Array.from({ length: 20 }, (_, i) => fenceOf(redis, 100 + i)));
        return fences.every((f) => f === "10") ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100, what: "every key at version 10" },
    );
    const evicted = await Promise.all(
      registries.map(
        async (r) =>
          ((await r.getSingleMetric("invalidator_events_total")?.get())?.values ?? []).find((v) => v.labels.outcome === "evicted")?.value ??
          0,
      ),
    );
    console.log(`two invalidators in one group evicted ${evicted.join(" + ")} of 200 events`);
    expect(evicted[0]).toBeGreaterThan(0);
    expect(evicted[1]).toBeGreaterThan(0);
    await redis.quit();
  });

  it("a poison event whose key names a product evicts and fences it before it is dead-lettered, and counts it", async () => {
    const prefix = `itest-${runId()}`;
    const redis = redisClient();
    const metrics = createMetricsRegistry("invalidator-test");
    await start(prefix, redis, `g-${runId()}`, metrics);
    const k = entityKeys(SCHEMA, "product", 31);
    await redis.set(k.value, JSON.stringify({ version: 5, storedAt: Date.now(), value: {} }), "PX", 600_000);
    await producer.send({
      topic: `${prefix}.public.products`,
      messages: [
        { key: '{"id":31}', value: "x".repeat(300 * 1024) }, // too large to read: its key still names the product
        { key: "{not a key", value: "{not json" }, // nothing to evict
      ],
    });
    const dead = async (evicted: string) =>
      ((await metrics.getSingleMetric("invalidator_dead_lettered_total")?.get())?.values ?? []).find((v) => v.labels.evicted === evicted)
        ?.value ?? 0;
    await waitFor(async () => ((await dead("true")) === 1 && (await dead("false")) === 1 ? true : undefined), {
      timeoutMs: 30_000,
      what: "both poison events dead-lettered",
    });
    expect(await redis.exists(k.value)).toBe(0);
    expect(await fenceOf(redis, 31)).toBe(String(DELETE_FENCE_VERSION));
    await redis.quit();
  });

  it("evicts every announced schema version next to its own, and stops evicting a version nobody announces any more", async () => {
    const prefix = `itest-${runId()}`;
    const redis = redisClient();
    const other = SCHEMA + 100_000 + Math.floor(Math.random() * 1_000);
    await announceSchemaVersion(redis, other, 1_500);
    await start(prefix, redis, `g-${runId()}`, createMetricsRegistry("invalidator-test"), { schemaVersionRefreshMs: 200 });
    const fence = (v: number, id: number) => redis.get(entityKeys(v, "product", id).fence);
    await producer.send({ topic: `${prefix}.public.products`, messages: [productEvent(40, 3)] });
    await waitFor(async () => ((await fence(SCHEMA, 40)) === "3" && (await fence(other, 40)) === "3" ? true : undefined), {
      timeoutMs: 30_000,
      what: "both versions evicted",
    });
    // The announcement expires (nobody renews it): within a refresh the version drops out.
    await new Promise((r) => setTimeout(r, 2_000));
    await producer.send({ topic: `${prefix}.public.products`, messages: [productEvent(41, 4)] });
    await waitFor(async () => ((await fence(SCHEMA, 41)) === "4" ? true : undefined), { timeoutMs: 30_000, what: "own version evicted" });
    expect(await fence(other, 41)).toBeNull();
    await redis.quit();
  });

  it("a version announced while running gets its keys invalidated at each row's current version (stale values gone, current ones kept)", async () => {
    const prefix = `itest-${runId()}`;
    const redis = redisClient();
    const pool = pgPool();
    try {
      await start(prefix, redis, `g-${runId()}`, createMetricsRegistry("invalidator-test"), {
        schemaVersionRefreshMs: 200,
        pool,
      });
      const stale = await insertProduct(pool, { sku: `NEWV-${runId()}`, listPriceCents: 100, stock: 1 });
      const current = await insertProduct(pool, { sku: `NEWV-${runId()}`, listPriceCents: 100, stock: 1 });
      const version = async (id: number) => Number((await pool.query("SELECT version FROM products WHERE id = $1", [id])).rows[0].version);
      // A catalog on a new version filled before the invalidator evicted that version: one value
      // older than its row (a change was handled for the other versions only), one current.
      const v2 = SCHEMA + 200_000 + Math.floor(Math.random() * 1_000);
      const k = (id: number) => entityKeys(v2, "product", id);
      const staleVersion = (await version(stale.id)) - 1;
      await redis.set(k(stale.id).value, JSON.stringify({ version: staleVersion, storedAt: Date.now(), value: {} }), "PX", 600_000);
      await redis.set(
        k(current.id).value,
        JSON.stringify({ version: await version(current.id), storedAt: Date.now(), value: {} }),
        "PX",
        600_000,
      );
      expect(await redis.zscore(FRESHNESS_KEYS.covered, String(SCHEMA))).not.toBeNull(); // our own: covered from the start
      await announceSchemaVersion(redis, v2, 10_000);
      // Covered (catalogs on v2 may trust the watermark) only once the retire is done: the first
      // moment it is covered, the stale value is already gone (docs/architecture.md#freshness).
      let staleAtCoverage: number | null = null;
      await waitFor(
        async () => {
          const [covered, staleLeft] = await redis
            .multi()
            .zscore(FRESHNESS_KEYS.covered, String(v2))
            .exists(k(stale.id).value)
            .exec()
            .then((x) => (x ?? []).map((e) => e[1]));
          if (covered === null) return undefined;
          staleAtCoverage = Number(staleLeft);
          return true;
        },
        { timeoutMs: 10_000, intervalMs: 2, what: "the new version covered" },
      );
      expect(staleAtCoverage).toBe(0);
      expect(await redis.get(k(stale.id).fence)).toBe(String(await version(stale.id)));
      expect(await redis.exists(k(current.id).value)).toBe(1);
    } finally {
      await redis.quit();
      await pool.end();
    }
  });
});
