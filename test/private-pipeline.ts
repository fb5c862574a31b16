/**
 * A private CDC pipeline for destructive tests and the invalidation benchmark: its own database
 * (created from the migrations, with infra/postgres/init.sql's products DDL guard), its own Debezium
 * connector + slot + topic prefix (infra/native/register-connector), its own redis-server, and an
 * in-process invalidator. Nothing of the test stack's shared tables, Redis db or topics is touched,
 * so TRUNCATE and table rewrites here cannot disturb other suites, and the freshness watermark it
 * publishes lands in its own Redis (a watermark about this database must never reach catalogs of
 * another). The DDL guard needs a superuser (event triggers): FLASHSALE_PG_SUPERUSER_URL, default
 * the native stack's bootstrap role.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { migrate } from "@flashsale/db";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { PrivateRedis, runId, TEST_ENV, waitFor } from "@flashsale/testkit";
import { Redis } from "ioredis";
import { Kafka, logLevel } from "kafkajs";
import pg from "pg";
import type { Registry } from "prom-client";
import { type InvalidatorOptions, type RunningInvalidator, startInvalidator } from "../services/invalidator/src/consumer.ts";

const execFileP = promisify(execFile);
const REPO_ROOT = new URL("../", import.meta.url).pathname;
const SUPERUSER_URL = process.env.FLASHSALE_PG_SUPERUSER_URL ?? "postgresql://postgres:postgres@127.0.0.1:5432/postgres";

/** The block of init.sql that installs the products DDL guard (event triggers) in one database. */
export function ddlGuardSql(): string {
  const sql = readFileSync(`${REPO_ROOT}infra/postgres/init.sql`, "utf8");
  const start = sql.indexOf("-- begin products DDL guard");
  const end = sql.indexOf("-- end products DDL guard");
  if (start < 0 || end < start) throw new Error("init.sql has no products DDL guard block");
  return sql.slice(start, end);
}

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

export interface PrivatePipeline {
  name: string;
  databaseUrl: string;
  pool: pg.Pool;
  redis: Redis;
  redisServer: PrivateRedis;
  topicPrefix: string;
  metrics: Registry;
  invalidator: RunningInvalidator;
  /** Runs SQL as the superuser in the private database (the guard tests remove and restore it). */
  asSuperuser(sql: string): Promise<void>;
  startAnotherInvalidator(o: Partial<InvalidatorOptions>): Promise<RunningInvalidator>;
  close(): Promise<void>;
}

export async function startPrivatePipeline(o: {
  schemaVersion: number;
  redisPort: number;
  withWatermark?: boolean;
}): Promise<PrivatePipeline> {
  const name = `flashsale_cdc_${runId().replace(/[^a-z0-9]/g, "")}`;
  const databaseUrl = withDatabase(TEST_ENV.databaseUrl, name);
  const owner = new pg.Client({ connectionString: TEST_ENV.databaseUrl });
  await owner.connect();
  await owner.query(`CREATE DATABASE ${name}`);
  await owner.end();
  // The guard first, then the migrations: the order `infra/native/up` runs them in on a fresh cluster.
  const superuser = new pg.Client({ connectionString: withDatabase(SUPERUSER_URL, name) });
  await superuser.connect();
  const asSuperuser = async (sql: string) => void (await superuser.query(sql));
  await asSuperuser(ddlGuardSql());
  await migrate(databaseUrl);

  const connectorEnv = {
    ...process.env,
    FLASHSALE_CONNECTOR_NAME: name,
    FLASHSALE_CDC_DB: name,
    FLASHSALE_CDC_SLOT: name,
    FLASHSALE_CDC_TOPIC_PREFIX: name,
    FLASHSALE_CONNECTOR_SETTLE: "1",
  };
  await execFileP(`${REPO_ROOT}infra/native/register-connector`, [], { env: connectorEnv });

  const redisServer = new PrivateRedis(o.redisPort);
  await redisServer.start();
  const redis = new Redis(redisServer.url);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 8 });
  const metrics = createMetricsRegistry("private-pipeline");
  const kafka = new Kafka({ brokers: TEST_ENV.kafkaBrokers, clientId: name, logLevel: logLevel.NOTHING });
  const logger = createLogger("private-pipeline", process.env.E2E_LOG_LEVEL ?? "silent");
  const base: InvalidatorOptions = {
    kafka,
    redis,
    logger,
    metrics,
    groupId: `${name}-invalidator`,
    topicPrefix: name,
    schemaVersion: o.schemaVersion,
    fenceTtlMs: 60_000,
    newGroupStartsAt: "earliest",
    ...(o.withWatermark === false ? {} : { pool }),
  };
  const others: RunningInvalidator[] = [];
  const invalidator = await startInvalidator(base);

  return {
    name,
    databaseUrl,
    pool,
    redis,
    redisServer,
    topicPrefix: name,
    metrics,
    invalidator,
    asSuperuser,
    async startAnotherInvalidator(extra) {
      const r = await startInvalidator({ ...base, metrics: createMetricsRegistry("private-pipeline-2"), ...extra });
      others.push(r);
      return r;
    },
    async close() {
      for (const r of [invalidator, ...others]) await r.stop().catch(() => {});
      await execFileP(`${REPO_ROOT}infra/native/register-connector`, ["--delete"], { env: connectorEnv }).catch(() => {});
      await pool.end().catch(() => {});
      await redis.quit().catch(() => {});
      await redisServer.kill();
      await superuser.end().catch(() => {});
      const admin = new pg.Client({ connectionString: SUPERUSER_URL });
      await admin.connect();
      try {
        // The slot stays active for a moment after the connector's task stopped.
        await waitFor(
          async () => {
            const { rows } = await admin.query("SELECT active FROM pg_replication_slots WHERE slot_name = $1", [name]);
            if (rows.length === 0) return true;
            if (rows[0].active) return undefined;
            await admin.query("SELECT pg_drop_replication_slot($1)", [name]);
            return true;
          },
          { timeoutMs: 30_000, intervalMs: 200, what: `slot ${name} released` },
        ).catch(() => {});
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
      const kadmin = kafka.admin();
      await kadmin.connect();
      const topics = (await kadmin.listTopics()).filter((t) => t.startsWith(`${name}.`));
      if (topics.length > 0) await kadmin.deleteTopics({ topics }).catch(() => {});
      await kadmin.disconnect();
    },
  };
}
