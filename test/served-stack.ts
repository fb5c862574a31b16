/**
 * The isolation check of scripts/test: a fingerprint of what scripts/up serves (its database's
 * row writes, its Redis database's keys, its topics' end offsets), taken before the tests and
 * compared after them. Any difference means a test wrote to the served stack.
 *   node --import tsx test/served-stack.ts snapshot <file>
 *   node --import tsx test/served-stack.ts verify <file>     exit 1 naming what changed
 * The served stack's coordinates are the services' own defaults (packages/config), the same
 * ones scripts/up uses; test/stack.env must differ from them in every one.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { invalidatorSchema, loadConfig } from "@flashsale/config";
import { Redis } from "ioredis";
import { Kafka, logLevel } from "kafkajs";
import pg from "pg";

type Fingerprint = Record<string, string | number>;

// An empty environment: the defaults, i.e. the coordinates scripts/up serves.
const served = loadConfig(invalidatorSchema, {});

async function databaseWrites(): Promise<Fingerprint> {
  const db = new URL(served.DATABASE_URL).pathname.slice(1);
  const client = new pg.Client({ connectionString: served.DATABASE_URL, connectionTimeoutMillis: 5_000, statement_timeout: 5_000 });
  await client.connect();
  try {
    // Statistics are flushed by each backend at its transaction end (at most once a second) and
    // when it exits; the tests' connections are all closed by the time we verify.
    const { rows } = await client.query<{ ins: string; upd: string; del: string }>(
      "SELECT tup_inserted AS ins, tup_updated AS upd, tup_deleted AS del FROM pg_stat_database WHERE datname = $1",
      [db],
    );
    const r = rows[0];
    return {
      [`postgres ${db}: rows inserted`]: Number(r?.ins),
      [`postgres ${db}: rows updated`]: Number(r?.upd),
      [`postgres ${db}: rows deleted`]: Number(r?.del),
    };
  } finally {
    await client.end();
  }
}

async function redisKeys(): Promise<Fingerprint> {
  const redis = new Redis(served.REDIS_URL, { commandTimeout: 5_000, connectTimeout: 5_000, maxRetriesPerRequest: 1 });
  try {
    const out: Fingerprint = {};
    // Every key with its type and TTL class: a test that wrote, replaced or deleted one shows.
    const keys: string[] = [];
    let cursor = "0";
    do {
      const [next, batch] = await redis.scan(cursor, "COUNT", 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== "0");
    out["redis db: keys"] = keys.length;
    const digest = keys.sort().join("\n");
    out["redis db: key names"] = digest.length === 0 ? "" : String(hash(digest));
    return out;
  } finally {
    redis.disconnect();
  }
}

async function topicOffsets(): Promise<Fingerprint> {
  const kafka = new Kafka({
    brokers: served.KAFKA_BROKERS,
    clientId: "served-stack-check",
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5_000,
    requestTimeout: 10_000,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const out: Fingerprint = {};
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${served.KAFKA_TOPIC_PREFIX}.`)).sort();
    for (const t of topics) {
      const offsets = await admin.fetchTopicOffsets(t);
      out[`kafka ${t}: end offsets`] = offsets.map((o) => `${o.partition}:${o.high}`).join(",");
    }
    return out;
  } finally {
    await admin.disconnect();
  }
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

async function fingerprint(): Promise<Fingerprint> {
  const parts = await Promise.all([databaseWrites(), redisKeys(), topicOffsets()]);
  return Object.assign({}, ...parts);
}

const [mode, file] = process.argv.slice(2);
if (!file || (mode !== "snapshot" && mode !== "verify")) {
  console.error("usage: served-stack.ts snapshot|verify <file>");
  process.exit(2);
}
const now = await fingerprint();
if (mode === "snapshot") {
  writeFileSync(file, JSON.stringify(now, null, 2));
  process.exit(0);
}
const before = JSON.parse(readFileSync(file, "utf8")) as Fingerprint;
const changed = [...new Set([...Object.keys(before), ...Object.keys(now)])].filter((k) => before[k] !== now[k]);
if (changed.length > 0) {
  console.error("[isolation] the tests wrote to the stack scripts/up serves:");
  for (const k of changed) console.error(`  ${k}: ${before[k] ?? "(none)"} -> ${now[k] ?? "(none)"}`);
  process.exit(1);
}
console.log(`[isolation] the served stack is untouched (${Object.keys(now).length} fingerprints compared)`);
