/**
 * Issue 10, "done when": with Kafka Connect paused, a raw-SQL price change is served by the catalog
 * within Δ + 1 s. The Connect worker paused here is a private one (test/private-stack.ts: its own
 * worker group, Debezium connector, slot and topics on the test database), so the shared worker that
 * runs the served and the test stack's connectors is never stopped; a private invalidator consumes
 * the private topics and publishes the watermark into a private Redis the catalog reads.
 * SIGSTOP freezes the whole JVM, like the GC pause or hung worker of the issue.
 */
import { insertProduct, pgPool, runId } from "@flashsale/testkit";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  cached,
  changesServedWhilePaused,
  type OwnedProcess,
  PrivateConnect,
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
const connect = new PrivateConnect("connect-hang");

beforeAll(async () => {
  pool = pgPool();
  redis = await startRedis();
  await connect.start();
  invalidator = await startService("invalidator", {
    REDIS_URL: redis.url,
    KAFKA_TOPIC_PREFIX: connect.topicPrefix,
    KAFKA_GROUP_ID: `flashsale-test-connect-hang-${run}`,
    KAFKA_NEW_GROUP_START: "latest",
  });
  catalog = await startService("catalog", { REDIS_URL: redis.url });
  const probe = await insertProduct(pool, { sku: `CONHANG-${run}-probe`, listPriceCents: 100, stock: 1 });
  await pipelineServesChanges(catalog.url, probe.id, { timeoutMs: 120_000, what: "the private pipeline to serve a first change" });
}, 300_000);

afterAll(async () => {
  await invalidator?.stop();
  await catalog?.stop();
  await connect.stop();
  await redis?.stop();
  await pool?.end();
}, 120_000);

describe("Kafka Connect hang (SIGSTOP of a private worker)", () => {
  it("a raw-SQL change is served within Δ + 1 s while Connect is stopped, and hits resume after", async () => {
    const p = await insertProduct(pool, { sku: `CONHANG-${run}`, listPriceCents: 7_000, stock: 1 });
    await cached(catalog.url, p.id);
    const [first, second] = await changesServedWhilePaused(catalog.url, p.id, 7000, connect, DELTA_MS + 1_000);
    console.log(`Connect stopped: change served after ${Math.round(first)} ms (start of pause), ${Math.round(second)} ms (into it)`);
    expect(first).toBeLessThanOrEqual(DELTA_MS + 1_000);
    expect(second).toBeLessThanOrEqual(DELTA_MS + 1_000);
    await cached(catalog.url, p.id, 60_000);
  }, 120_000);
});
