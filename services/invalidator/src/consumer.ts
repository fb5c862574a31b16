import type { RedisClient } from "@flashsale/cache";
import type { Logger } from "@flashsale/telemetry";
import { type Batch, type Consumer, type EachBatchPayload, type Kafka, type KafkaMessage, Partitioners, type Producer } from "kafkajs";
import type pg from "pg";
import type { Registry } from "prom-client";
import {
  DELETE_FENCE_VERSION,
  type InventoryChange,
  PoisonMessage,
  type ProductChange,
  type ProductsRetired,
  parseInventoryChange,
  parseProductChange,
  productIdOfKey,
} from "./change-event.ts";
import { type ChangeHandlers, createChangeHandlers } from "./handlers.ts";
import { createInvalidatorMetrics, type InvalidatorMetrics } from "./metrics.ts";
import { trackSchemaVersions } from "./schema-versions.ts";
import { type InvalidatorTopics, invalidatorTopics } from "./topics.ts";
import { ensureHeartbeatRows, startWatermarkProducer, type WatermarkProducer } from "./watermark.ts";

export interface InvalidatorOptions {
  kafka: Kafka;
  redis: RedisClient;
  logger: Logger;
  metrics: Registry;
  groupId: string;
  topicPrefix: string;
  /** Our own cache schema version: always evicted, next to every version a catalog announces. */
  schemaVersion: number;
  fenceTtlMs: number;
  /** Partitions for topics we create when absent (matches the connector's topic.creation.default.partitions). */
  topicPartitions?: number;
  /**
   * Where a group with no committed offsets starts. "earliest" (default) so that no
   * change is missed on a first deployment; tests use "latest" to skip old history.
   */
  newGroupStartsAt?: "earliest" | "latest";
  /**
   * The captured database (the services' role may insert rows): present = the freshness watermark
   * is produced (heartbeat rows kept one per partition, DB<->Redis clock offset measured).
   */
  pool?: pg.Pool;
  /** How often the announced schema versions are re-read (default 1 s). */
  schemaVersionRefreshMs?: number;
  /**
   * "batched" (default). "per-message" = the handling before batching (one message, one Redis round
   * trip, one partition at a time): bench/invalidation-lag.ts measures it as the baseline, in the same run.
   */
  handling?: "batched" | "per-message";
  /** How often partitions added to the products topic and missing heartbeat rows are checked (default 30 s). */
  partitionWatchMs?: number;
}

export interface RunningInvalidator {
  /** True while the consumer is a member of its group (for /readyz). */
  isConsuming(): boolean;
  /** The cache schema versions evicted now (our own plus every announced one). */
  schemaVersions(): readonly number[];
  stop(): Promise<void>;
}

/**
 * The Kafka side of the invalidator (docs/architecture.md#invalidator): consumes Debezium's topics
 * a batch at a time, partitions concurrently, and hands the decoded changes to handlers.ts, which
 * returns once Redis acknowledged. At-least-once: a batch's offsets are committed only after its
 * handlers returned. Undecodable events go to the dead-letter topic with the reason, after the
 * product their key names (if any) was evicted and fenced.
 */
export async function startInvalidator(opts: InvalidatorOptions): Promise<RunningInvalidator> {
  const topics = invalidatorTopics(opts.topicPrefix);
  // A start that fails (Kafka unreachable) is retried by main.ts with the same registry: whatever
  // this attempt registered or started is undone below, else the retry throws "already registered"
  // for ever and the timers of the failed attempt keep running.
  const registeredBefore = new Set(opts.metrics.getMetricsAsArray().map((m) => m.name));
  const metrics = createInvalidatorMetrics(opts.metrics);
  let stopping = false;
  let handlers: ChangeHandlers | null = null;
  const versions = trackSchemaVersions({
    redis: opts.redis,
    own: opts.schemaVersion,
    logger: opts.logger,
    ...(opts.schemaVersionRefreshMs ? { refreshMs: opts.schemaVersionRefreshMs } : {}),
    onAdded: (added) => void retireNewVersions(added),
  });
  /**
   * A catalog on a version we did not evict yet may have cached a value (or be filling one read
   * before a change) that a change we already handled made stale. Now that the version is evicted,
   * each of its keys is invalidated at the row's current version (a stale value deleted, older fills
   * fenced, current ones kept; a row that is gone fenced like a delete). Without a database only
   * the values are dropped.
   */
  const pool = opts.pool;
  const currentVersions = pool
    ? async (ids: number[]) => {
        const { rows } = await pool.query<{ id: string; version: string }>(
          "SELECT id, version FROM products WHERE id = ANY($1::bigint[])",
          [ids],
        );
        return new Map(rows.map((r) => [Number(r.id), Number(r.version)]));
      }
    : undefined;
  // The first read (before the handlers exist) reports the versions announced while we were not
  // running: retired as soon as the handlers exist.
  let retireWhenReady: number[] = [];
  const retireNewVersions = async (added: number[]) => {
    if (added.length === 0) return;
    if (!handlers) {
      retireWhenReady = [...retireWhenReady, ...added];
      return;
    }
    try {
      await handlers?.retireProducts(
        {
          kind: "retire",
          reason: "new schema version",
          versionFloor: null,
          committedAtMs: Date.now(),
          schemaVersions: added,
          ...(currentVersions ? { currentVersions } : {}),
        },
        async () => {},
      );
      // Only now may catalogs on these versions trust the watermark (docs/architecture.md#freshness).
      await versions.markCovered(added);
    } catch (err) {
      opts.logger.warn(
        { err: (err as Error).message, added },
        "could not retire the keys of a newly announced schema version; retrying in 1 s",
      );
      // Not covered until retired: its catalogs revalidate meanwhile.
      if (!stopping) setTimeout(() => void retireNewVersions(added.filter((v) => versions.current().includes(v))), 1_000).unref();
    }
  };
  let watermark: WatermarkProducer | null = null;
  let partitionWatch: NodeJS.Timeout | null = null;
  let consumer: Consumer | null = null;
  let producer: Producer | null = null;
  try {
    await versions.refresh();
    handlers = createChangeHandlers({ ...opts, schemaVersions: versions.current, metrics, isStopping: () => stopping });
    const h = handlers;
    if (retireWhenReady.length > 0) void retireNewVersions(retireWhenReady);
    const kafkaConsumer: Consumer = opts.kafka.consumer({
      groupId: opts.groupId,
      // A fetch returns as soon as one byte is there; this only bounds idle polling.
      maxWaitTimeInMs: 100,
      // A bulk import is fetched in few large batches (one pipelined round of evictions each).
      maxBytesPerPartition: 8 * 1024 * 1024,
      maxBytes: 32 * 1024 * 1024,
      sessionTimeout: 10_000,
      heartbeatInterval: 1_000,
    });
    consumer = kafkaConsumer;
    const kafkaProducer: Producer = opts.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    producer = kafkaProducer;
    let consuming = false;
    kafkaConsumer.on(kafkaConsumer.events.GROUP_JOIN, () => {
      consuming = true;
    });
    for (const down of [kafkaConsumer.events.CRASH, kafkaConsumer.events.STOP, kafkaConsumer.events.DISCONNECT]) {
      kafkaConsumer.on(down, () => {
        consuming = false;
      });
    }

    const partitions = opts.topicPartitions ?? 3;
    await ensureTopics(opts.kafka, [...topics.consumed, topics.deadLetter], partitions);
    if (opts.pool) {
      const productsPartitions = await partitionCount(opts.kafka, topics.products);
      // Evictions never wait for Postgres: heartbeat rows missing only hold the watermark back (catalogs revalidate).
      const pool = opts.pool;
      const ensure = () =>
        ensureHeartbeatRows(pool, productsPartitions).catch((err) => {
          opts.logger.warn({ err: (err as Error).message }, "heartbeat rows not ensured; retrying in 5 s");
          if (!stopping) setTimeout(ensure, 5_000).unref();
        });
      void ensure();
      const wm = startWatermarkProducer({
        redis: opts.redis,
        pool: opts.pool,
        topic: topics.products,
        partitions: productsPartitions,
        metrics: opts.metrics,
        logger: opts.logger,
      });
      watermark = wm;
      // Partitions added to the products topic while running: a heartbeat row for each, and the
      // minimum waits for them (until then nothing newer is published). Every tick also puts back
      // heartbeat rows someone deleted (raw SQL, a restore): without them the watermark stops for
      // good and every catalog revalidates every hit until we restart.
      let known = productsPartitions;
      partitionWatch = setInterval(async () => {
        try {
          const n = await partitionCount(opts.kafka, topics.products);
          if (n > known) {
            wm.setPartitions(n);
            opts.logger.warn({ partitions: n }, "products topic has more partitions: heartbeat rows added");
            known = n;
          }
          await ensureHeartbeatRows(pool, known);
        } catch (err) {
          opts.logger.warn({ err: (err as Error).message }, "products topic partitions or heartbeat rows not checked");
        }
      }, opts.partitionWatchMs ?? 30_000);
      partitionWatch.unref();
    }
    await kafkaProducer.connect();
    await kafkaConsumer.connect();
    await kafkaConsumer.subscribe({ topics: topics.consumed, fromBeginning: (opts.newGroupStartsAt ?? "earliest") === "earliest" });

    const deadLetter = (topic: string, message: KafkaMessage, reason: string) =>
      kafkaProducer.send({
        topic: topics.deadLetter,
        acks: -1,
        timeout: 10_000,
        messages: [{ key: message.key, value: message.value, headers: { reason, "source-topic": topic, "source-offset": message.offset } }],
      });

    const perMessage = opts.handling === "per-message";
    await kafkaConsumer.run({
      partitionsConsumedConcurrently: perMessage ? 1 : Math.max(partitions, 3),
      eachBatchAutoResolve: false,
      eachBatch: async (payload: EachBatchPayload) => {
        const ctx = { topics, handlers: h, metrics, logger: opts.logger, deadLetter, watermark, isStopping: () => stopping };
        if (!perMessage) return handleBatch(ctx, payload);
        for (const message of payload.batch.messages) {
          if (!payload.isRunning() || payload.isStale()) return;
          await handleBatch(ctx, { ...payload, batch: { ...payload.batch, messages: [message] } as Batch });
        }
      },
    });
    opts.logger.info({ topics: topics.consumed, groupId: opts.groupId }, "invalidator consuming");

    return {
      isConsuming: () => consuming,
      schemaVersions: versions.current,
      async stop() {
        stopping = true;
        await versions.stop();
        watermark?.stop();
        if (partitionWatch) clearInterval(partitionWatch);
        await kafkaConsumer.disconnect();
        await kafkaProducer.disconnect();
      },
    };
  } catch (err) {
    stopping = true;
    await versions.stop().catch(() => {});
    watermark?.stop();
    if (partitionWatch) clearInterval(partitionWatch);
    await consumer?.disconnect().catch(() => {});
    await producer?.disconnect().catch(() => {});
    for (const m of opts.metrics.getMetricsAsArray()) if (!registeredBefore.has(m.name)) opts.metrics.removeSingleMetric(m.name);
    throw err;
  }
}

/**
 * One fetched batch of one partition: decode all, apply all (pipelined, de-duplicated per id), then
 * dead-letter the poison, commit, and report the batch's last heartbeat as applied. Evictions are
 * order-independent (each only deletes values older than its version and only raises fences), so
 * applying the batch as one set is what applying it message by message would leave.
 */
async function handleBatch(
  ctx: {
    topics: InvalidatorTopics;
    handlers: ChangeHandlers;
    metrics: InvalidatorMetrics;
    logger: Logger;
    deadLetter: (topic: string, message: KafkaMessage, reason: string) => Promise<unknown>;
    watermark: WatermarkProducer | null;
    isStopping: () => boolean;
  },
  { batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale }: EachBatchPayload,
): Promise<void> {
  if (batch.messages.length === 0 || !isRunning() || isStale()) return;
  const { topic, partition } = batch;
  const products: ProductChange[] = [];
  const inventory: InventoryChange[] = [];
  const retires: ProductsRetired[] = [];
  const poison: { message: KafkaMessage; reason: string; evicted: boolean }[] = [];
  let lastHeartbeatMs: number | null = null;

  for (const message of batch.messages) {
    try {
      if (topic === ctx.topics.inventory) {
        const change = parseInventoryChange(message.key, message.value);
        if (change.kind === "inventory") inventory.push(change);
        continue;
      }
      const change = parseProductChange(message.key, message.value);
      if (change.kind === "product") products.push(change);
      else if (change.kind === "retire") retires.push(change);
      else if (change.kind === "heartbeat") lastHeartbeatMs = change.committedAtMs;
    } catch (err) {
      if (!(err instanceof PoisonMessage)) throw err;
      // A poison event whose key names a product still evicts and fences it (at the delete
      // fence: its version is unknown, so no fill may pass until the fence is collected or a later
      // change of the id replaces it, see latestPerProduct).
      const id = topic === ctx.topics.products ? productIdOfKey(message.key) : null;
      if (id !== null) {
        products.push({ kind: "product", id, version: DELETE_FENCE_VERSION, op: "u", committedAtMs: Date.now(), traceparent: null });
      }
      poison.push({ message, reason: err.message, evicted: id !== null });
    }
  }

  await ctx.handlers.applyProductChanges(products, heartbeat);
  await ctx.handlers.applyInventoryChanges(inventory, heartbeat);
  for (const r of retires) await ctx.handlers.retireProducts(r, heartbeat);
  for (const p of poison) {
    ctx.logger.error(
      { topic, partition, offset: p.message.offset, reason: p.reason, evicted: p.evicted },
      "poison message -> dead-letter topic",
    );
    await ctx.deadLetter(topic, p.message, p.reason);
    ctx.metrics.events.inc({ outcome: "dead_lettered" });
    ctx.metrics.deadLettered.inc({ topic, evicted: String(p.evicted) });
  }
  resolveOffset(lastOffset(batch));
  await commitOffsetsIfNecessary();
  if (lastHeartbeatMs !== null && ctx.watermark) {
    try {
      await ctx.watermark.heartbeatApplied(partition, lastHeartbeatMs);
    } catch (err) {
      // The watermark only stops moving (catalogs then revalidate): never a reason to replay evictions.
      ctx.logger.warn({ err: (err as Error).message }, "freshness heartbeat not recorded");
    }
  }
  await heartbeat();
}

function lastOffset(batch: Batch): string {
  return batch.messages[batch.messages.length - 1]?.offset ?? batch.lastOffset();
}

async function partitionCount(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const md = await admin.fetchTopicMetadata({ topics: [topic] });
    return md.topics[0]?.partitions.length ?? 1;
  } finally {
    await admin.disconnect();
  }
}

/**
 * Debezium creates its topic on the first change, which on a fresh stack may come
 * after we start: create it (and the dead-letter topic) up front so subscribing
 * never fails. A no-op when they exist.
 */
async function ensureTopics(kafka: Kafka, names: string[], numPartitions: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = names.filter((t) => !existing.has(t));
    if (missing.length > 0) {
      await admin.createTopics({ waitForLeaders: true, topics: missing.map((topic) => ({ topic, numPartitions, replicationFactor: -1 })) });
    }
  } finally {
    await admin.disconnect();
  }
}
