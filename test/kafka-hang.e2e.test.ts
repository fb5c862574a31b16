/**
 * Issue 10, "done when": with Kafka paused, a raw-SQL price change is served by the catalog within
 * Δ + 1 s. The broker paused here is a private single-node Kafka (test/private-stack.ts), with a
 * private Connect worker and Debezium connector producing into it and a private invalidator consuming
 * from it into a private Redis the catalog reads, so the shared broker is never stopped. SIGSTOP
 * freezes the whole JVM (a stalled broker neither refuses nor answers).
 */
import { insertProduct, pgPool, runId } from "@flashsale/testkit";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  cached,
  changesServedWhilePaused,
  type OwnedProcess,
  PrivateConnect,
  PrivateKafka,
  pipelineServesChanges,
  startRedis,
  startService,
} from "./private-stack.ts";

const DELTA_MS = 2_000;
const run = runId();
let pool: pg.Pool;
let redis: OwnedProcess;
let invalidator: OwnedProcess;
let catalog: OwnedProcess;
const kafka = new PrivateKafka();
let connect: PrivateConnect;

beforeAll(async () => {
  pool = pgPool();
  redis = await startRedis();
  await kafka.start();
  connect = new PrivateConnect("kafka-hang", kafka.brokers);
  await connect.start();
  invalidator = await startService("invalidator", {
    REDIS_URL: redis.url,
    KAFKA_BROKERS: kafka.brokers,
    KAFKA_TOPIC_PREFIX: connect.topicPrefix,
    KAFKA_GROUP_ID: `flashsale-test-kafka-hang-${run}`,
    KAFKA_NEW_GROUP_START: "latest",
  });
  catalog = await startService("catalog", { REDIS_URL: redis.url });
  const probe = await insertProduct(pool, { sku: `KAFHANG-${run}-probe`, listPriceCents: 100, stock: 1 });
  await pipelineServesChanges(catalog.url, probe.id, { timeoutMs: 120_000, what: "the private pipeline to serve a first change" });
}, 300_000);

afterAll(async () => {
  await invalidator?.stop();
  await catalog?.stop();
  await connect?.stop();
  await kafka.stop();
  await redis?.stop();
  await pool?.end();
}, 120_000);

describe("Kafka hang (SIGSTOP of a private broker)", () => {
  it("a raw-SQL change is served within Δ + 1 s while Kafka is stopped, and hits resume after", async () => {
    const p = await insertProduct(pool, { sku: `KAFHANG-${run}`, listPriceCents: 7_000, stock: 1 });
    await cached(catalog.url, p.id);
    const [first, second] = await changesServedWhilePaused(catalog.url, p.id, 7000, kafka, DELTA_MS + 1_000);
    console.log(`Kafka stopped: change served after ${Math.round(first)} ms (start of pause), ${Math.round(second)} ms (into it)`);
    expect(first).toBeLessThanOrEqual(DELTA_MS + 1_000);
    expect(second).toBeLessThanOrEqual(DELTA_MS + 1_000);
    await cached(catalog.url, p.id, 60_000);
  }, 120_000);
});
