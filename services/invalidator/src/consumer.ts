import { invalidateEntity } from "@flashsale/cache";
import type { Logger } from "@flashsale/telemetry";
import type { Redis } from "ioredis";
import { type Consumer, type EachMessagePayload, type Kafka, Partitioners, type Producer } from "kafkajs";
import { Counter, Histogram, type Registry } from "prom-client";
import { PoisonMessage, parseProductChange } from "./change-event.ts";

export interface InvalidatorOptions {
  kafka: Kafka;
  redis: Redis;
  logger: Logger;
  metrics: Registry;
  groupId: string;
  topicPrefix: string;
  schemaVersion: number;
  fenceTtlMs: number;
  /** Partitions for topics we create when absent (matches the connector's topic.creation.default.partitions). */
  topicPartitions?: number;
  /**
   * Where a group with no committed offsets starts. "earliest" (default) so that no
   * change is missed on a first deployment; tests use "latest" to skip old history.
   */
  newGroupStartsAt?: "earliest" | "latest";
}

export interface RunningInvalidator {
  /** True while the consumer is a member of its group (for /readyz). */
  isConsuming(): boolean;
  stop(): Promise<void>;
}

const MAX_BACKOFF_MS = 5_000;

/**
 * Consumes Debezium's products topic and evicts + fences the product's cache key
 * (design.md §5). At-least-once: a message's offset is only committed after its
 * handler returned, and the handler only returns once Redis acknowledged the
 * eviction (retrying with backoff while Redis is down; nothing is dropped).
 * Undecodable events go to the dead-letter topic with the reason.
 */
export async function startInvalidator(opts: InvalidatorOptions): Promise<RunningInvalidator> {
  const topic = `${opts.topicPrefix}.public.products`;
  const dlqTopic = `${opts.topicPrefix}.invalidator.dlq`;
  const m = createMetrics(opts.metrics);
  const consumer: Consumer = opts.kafka.consumer({
    groupId: opts.groupId,
    // A fetch returns as soon as one byte is there; this only bounds idle polling.
    maxWaitTimeInMs: 100,
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
  });
  const producer: Producer = opts.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  let stopping = false;
  let consuming = false;
  consumer.on(consumer.events.GROUP_JOIN, () => {
    consuming = true;
  });
  for (const down of [consumer.events.CRASH, consumer.events.STOP, consumer.events.DISCONNECT]) {
    consumer.on(down, () => {
      consuming = false;
    });
  }

  await ensureTopics(opts.kafka, [topic, dlqTopic], opts.topicPartitions ?? 3);
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: (opts.newGroupStartsAt ?? "earliest") === "earliest" });

  const handle = async ({ message, heartbeat, partition }: EachMessagePayload): Promise<void> => {
    let change: ReturnType<typeof parseProductChange>;
    try {
      change = parseProductChange(message.key, message.value);
    } catch (err) {
      if (!(err instanceof PoisonMessage)) throw err;
      opts.logger.warn({ partition, offset: message.offset, reason: err.message }, "poison message -> dead-letter topic");
      await producer.send({
        topic: dlqTopic,
        acks: -1,
        timeout: 10_000,
        messages: [
          {
            key: message.key,
            value: message.value,
            headers: { reason: err.message, "source-topic": topic, "source-offset": message.offset },
          },
        ],
      });
      m.events.inc({ outcome: "dead_lettered" });
      return;
    }
    if (change.kind === "tombstone") return;

    let backoff = 50;
    for (;;) {
      try {
        await invalidateEntity(opts.redis, {
          schemaVersion: opts.schemaVersion,
          entity: "product",
          id: change.id,
          version: change.version,
          fenceTtlMs: opts.fenceTtlMs,
        });
        break;
      } catch (err) {
        // Redis is down or slow: keep the offset uncommitted and try again.
        if (stopping) throw err;
        m.redisRetries.inc();
        opts.logger.warn({ err: (err as Error).message, productId: change.id, backoff }, "eviction failed, retrying");
        await sleep(backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        await heartbeat();
      }
    }
    m.lag.observe(Math.max(0, Date.now() - change.committedAtMs) / 1000);
    m.events.inc({ outcome: "evicted" });
  };

  await consumer.run({ eachMessage: handle });
  opts.logger.info({ topic, groupId: opts.groupId }, "invalidator consuming");

  return {
    isConsuming: () => consuming,
    async stop() {
      stopping = true;
      await consumer.disconnect();
      await producer.disconnect();
    },
  };
}

/**
 * Debezium creates its topic on the first change, which on a fresh stack may come
 * after we start: create it (and the dead-letter topic) up front so subscribing
 * never fails. A no-op when they exist.
 */
async function ensureTopics(kafka: Kafka, topics: string[], numPartitions: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t));
    if (missing.length > 0) {
      await admin.createTopics({ waitForLeaders: true, topics: missing.map((topic) => ({ topic, numPartitions, replicationFactor: -1 })) });
    }
  } finally {
    await admin.disconnect();
  }
}

function createMetrics(registry: Registry) {
  return {
    lag: new Histogram({
      name: "invalidation_lag_seconds",
      help: "Eviction time minus Postgres commit time (Debezium source.ts_ms)",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    events: new Counter({
      name: "invalidator_events_total",
      help: "Change events handled, by outcome",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    redisRetries: new Counter({
      name: "invalidator_redis_retries_total",
      help: "Evictions retried because Redis failed",
      registers: [registry],
    }),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
