/**
 * Heartbeat rows deleted while the invalidator runs (raw SQL, a restore) are put back
 * (docs/architecture.md#freshness): without them Debezium's heartbeat updates nothing, the
 * watermark stops for good and every catalog revalidates every hit until the invalidator restarts
 * (review: `DELETE FROM cdc_heartbeat WHERE id = 4` on the served stack left the watermark 40 s old
 * and still growing). A private schema of the test database holds our own cdc_heartbeat table, so
 * the shared one is never touched; own topics, a private redis-server.
 */
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { PrivateRedis, pgPool, runId, TEST_ENV, waitFor } from "@flashsale/testkit";
import { Redis } from "ioredis";
import { Kafka, logLevel } from "kafkajs";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningInvalidator, startInvalidator } from "../src/consumer.ts";

const schema = `hb_${runId()
  .replace(/[^a-z0-9]/gi, "")
  .toLowerCase()}`;
const admin = pgPool();
let pool: pg.Pool;
let server: PrivateRedis;
let redis: Redis;
let inv: RunningInvalidator | null = null;

beforeAll(async () => {
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.query(`CREATE TABLE ${schema}.cdc_heartbeat (LIKE public.cdc_heartbeat INCLUDING ALL)`);
  pool = new pg.Pool({ connectionString: TEST_ENV.databaseUrl, max: 2, options: `-c search_path=${schema}` });
  server = new PrivateRedis(19_700 + Math.floor(Math.random() * 150));
  await server.start();
  redis = new Redis(server.url);
});
afterAll(async () => {
  await inv?.stop().catch(() => {});
  redis.disconnect();
  await server.kill();
  await pool.end();
  await admin.query(`DROP SCHEMA ${schema} CASCADE`);
  await admin.end();
});

const rows = async () => (await pool.query<{ id: number }>("SELECT id FROM cdc_heartbeat ORDER BY id")).rows.map((r) => r.id);

describe("heartbeat rows", () => {
  it("a deleted heartbeat row is put back while running", async () => {
    inv = await startInvalidator({
      kafka: new Kafka({ brokers: TEST_ENV.kafkaBrokers, clientId: "hb-test", logLevel: logLevel.NOTHING }),
      redis,
      logger: createLogger("hb-test", "silent"),
      metrics: createMetricsRegistry("hb-test"),
      groupId: `g-${schema}`,
      topicPrefix: `itest-${schema}`,
      schemaVersion: 2,
      fenceTtlMs: 60_000,
      newGroupStartsAt: "latest",
      pool,
      partitionWatchMs: 300,
    });
    const all = await waitFor(async () => ((await rows()).length === 3 ? rows() : undefined), { timeoutMs: 10_000, what: "3 rows" });
    await pool.query("DELETE FROM cdc_heartbeat WHERE id = $1", [all[2]]);
    expect(await rows()).toHaveLength(2);
    expect(
      await waitFor(async () => ((await rows()).length === 3 ? rows() : undefined), { timeoutMs: 10_000, what: "the row back" }),
    ).toEqual(all);
  });
});
