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
import { parseKey } from "@flashsale/cache";
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
    // Row writes to the database's own tables, less cdc_heartbeat: the served connector's
    // heartbeat.action.query updates it every 200 ms whether or not a test runs, and autovacuum then
    // writes system catalogs (docs/architecture.md "Freshness"). DDL shows as a changed relation count.
    const { rows } = await client.query<{ ins: string; upd: string; del: string; rels: string }>(
      `SELECT coalesce(sum(n_tup_ins), 0) AS ins, coalesce(sum(n_tup_upd), 0) AS upd, coalesce(sum(n_tup_del), 0) AS del,
              (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')) AS rels
         FROM pg_stat_user_tables WHERE NOT (schemaname = 'public' AND relname = 'cdc_heartbeat')`,
    );
    const r = rows[0];
    return {
      [`postgres ${db}: rows inserted`]: Number(r?.ins),
      [`postgres ${db}: rows updated`]: Number(r?.upd),
      [`postgres ${db}: rows deleted`]: Number(r?.del),
      [`postgres ${db}: relations`]: Number(r?.rels),
    };
  } finally {
    await client.end();
  }
}

/**
 * Redis keys by name, with whether each has a TTL. Keys with a TTL may expire during the run on
 * their own, so only a new key, or a vanished key that had no TTL, counts as a write.
 */
async function redisKeys(): Promise<Record<string, boolean>> {
  const redis = new Redis(served.REDIS_URL, { commandTimeout: 5_000, connectTimeout: 5_000, maxRetriesPerRequest: 1 });
  try {
    const keys: string[] = [];
    let cursor = "0";
    do {
      const [next, batch] = await redis.scan(cursor, "COUNT", 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== "0");
    const pipeline = redis.pipeline();
    for (const k of keys) pipeline.pttl(k);
    const ttls = (await pipeline.exec()) ?? [];
    // A fence has no Redis TTL on purpose (memory pressure must not evict it) but does expire: the
    // served catalogs' sweep collects it (packages/cache invalidate.ts sweepFences). Counted as a key
    // with a TTL, so its collection during the run is not mistaken for a test's write.
    return Object.fromEntries(keys.map((k, i) => [k, Number(ttls[i]?.[1]) >= 0 || parseKey(k)?.part === "fence"]));
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

/** True when every message between two end-offset fingerprints of `topic` is a cdc_heartbeat event. */
async function onlyHeartbeats(topic: string, from: string, to: string): Promise<boolean> {
  const parse = (f: string) => new Map(f.split(",").map((p) => p.split(":").map(Number) as [number, number]));
  const start = parse(from);
  const end = parse(to);
  const remaining = new Map([...end].filter(([p, high]) => high > (start.get(p) ?? 0)));
  if (remaining.size === 0) return true;
  const kafka = new Kafka({ brokers: served.KAFKA_BROKERS, clientId: "served-stack-check", logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `served-stack-check-${process.pid}-${Date.now()}` });
  let other = false;
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: false });
    const done = new Promise<void>((resolve) => {
      void consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          const high = remaining.get(batch.partition);
          if (high === undefined) return;
          for (const m of batch.messages) {
            if (Number(m.offset) >= high) break;
            const table = (() => {
              try {
                const v = JSON.parse(m.value?.toString() ?? "null");
                return v?.__table ?? v?.source?.table;
              } catch {
                return undefined;
              }
            })();
            if (table !== "cdc_heartbeat") other = true;
            if (Number(m.offset) === high - 1) remaining.delete(batch.partition);
          }
          if (remaining.size === 0 || other) resolve();
        },
      });
    });
    for (const [partition] of remaining) consumer.seek({ topic, partition, offset: String(start.get(partition) ?? 0) });
    await Promise.race([done, new Promise((r) => setTimeout(r, 20_000))]);
    return !other && remaining.size === 0;
  } finally {
    await consumer.disconnect();
  }
}

interface Snapshot {
  counters: Fingerprint;
  redisKeys: Record<string, boolean>;
}

async function snapshot(): Promise<Snapshot> {
  const [db, keys, topics] = await Promise.all([databaseWrites(), redisKeys(), topicOffsets()]);
  return { counters: { ...db, ...topics }, redisKeys: keys };
}

const [mode, file] = process.argv.slice(2);
if (!file || (mode !== "snapshot" && mode !== "verify")) {
  console.error("usage: served-stack.ts snapshot|verify <file>");
  process.exit(2);
}
const now = await snapshot();
if (mode === "snapshot") {
  writeFileSync(file, JSON.stringify(now));
  process.exit(0);
}
const before = JSON.parse(readFileSync(file, "utf8")) as Snapshot;
const changes: string[] = [];
for (const k of new Set([...Object.keys(before.counters), ...Object.keys(now.counters)])) {
  if (before.counters[k] === now.counters[k]) continue;
  const topic = /^kafka (.+): end offsets$/.exec(k)?.[1];
  // The served connector's freshness heartbeats land in the products topic every 200 ms
  // (docs/architecture.md "Freshness"): a topic that grew by heartbeats alone is untouched.
  if (topic && before.counters[k] !== undefined && (await onlyHeartbeats(topic, String(before.counters[k]), String(now.counters[k]))))
    continue;
  changes.push(`${k}: ${before.counters[k] ?? "(none)"} -> ${now.counters[k] ?? "(none)"}`);
}
const added = Object.keys(now.redisKeys).filter((k) => !(k in before.redisKeys));
const removed = Object.keys(before.redisKeys).filter((k) => !(k in now.redisKeys) && !before.redisKeys[k]);
if (added.length > 0) changes.push(`redis: ${added.length} new key(s), e.g. ${added.slice(0, 3).join(", ")}`);
if (removed.length > 0) changes.push(`redis: ${removed.length} key(s) without TTL gone, e.g. ${removed.slice(0, 3).join(", ")}`);
if (changes.length > 0) {
  console.error("[isolation] the tests wrote to the stack scripts/up serves:");
  for (const c of changes) console.error(`  ${c}`);
  process.exit(1);
}
console.log(
  `[isolation] the served stack is untouched (${Object.keys(now.counters).length} counters, ${Object.keys(now.redisKeys).length} Redis keys compared)`,
);
