import { invalidateEntity, type RedisClient, StockGate } from "@flashsale/cache";
import { type Logger, spanContextFromTraceparent, trace } from "@flashsale/telemetry";
import { type Consumer, type EachMessagePayload, type Kafka, type KafkaMessage, Partitioners, type Producer } from "kafkajs";
import { Counter, Histogram, type Registry } from "prom-client";
import { PoisonMessage, parseInventoryChange, parseProductChange } from "./change-event.ts";

export interface InvalidatorOptions {
  kafka: Kafka;
  redis: RedisClient;
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
const tracer = trace.getTracer("flashsale-invalidator");

/**
 * Consumes Debezium's topics: a products change evicts + fences the product's cache key,
 * an inventory change syncs the checkout's stock gate. For products:
 * (design.md §5). At-least-once: a message's offset is only committed after its
 * handler returned, and the handler only returns once Redis acknowledged the
 * eviction (retrying with backoff while Redis is down; nothing is dropped).
 * Undecodable events go to the dead-letter topic with the reason.
 */
export async function startInvalidator(opts: InvalidatorOptions): Promise<RunningInvalidator> {
  const productsTopic = `${opts.topicPrefix}.public.products`;
  const inventoryTopic = `${opts.topicPrefix}.public.inventory`;
  const gate = new StockGate(opts.redis);
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

  await ensureTopics(opts.kafka, [productsTopic, inventoryTopic, dlqTopic], opts.topicPartitions ?? 3);
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({
    topics: [productsTopic, inventoryTopic],
    fromBeginning: (opts.newGroupStartsAt ?? "earliest") === "earliest",
  });

  /** Retries a RedisClient write with backoff until it succeeds: the offset is not committed before. */
  const untilRedisAcknowledges = async (write: () => Promise<void>, heartbeat: () => Promise<void>, what: object) => {
    let backoff = 50;
    for (;;) {
      try {
        await write();
        return;
      } catch (err) {
        if (stopping) throw err;
        m.redisRetries.inc();
        opts.logger.warn({ err: (err as Error).message, ...what, backoff }, "redis write failed, retrying");
        await sleep(backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        await heartbeat();
      }
    }
  };

  const apply = async (topic: string, message: KafkaMessage, heartbeat: () => Promise<void>): Promise<void> => {
    if (topic === inventoryTopic) {
      const change = parseInventoryChange(message.key, message.value);
      if (change.kind === "tombstone") return;
      const { productId, available } = change;
      await untilRedisAcknowledges(() => (available === null ? gate.forget(productId) : gate.sync(productId, available)), heartbeat, {
        productId,
      });
      m.events.inc({ outcome: "stock_synced" });
      return;
    }
    const change = parseProductChange(message.key, message.value);
    if (change.kind === "tombstone") return;
    const target = {
      schemaVersion: opts.schemaVersion,
      entity: "product",
      id: change.id,
      version: change.version,
      fenceTtlMs: opts.fenceTtlMs,
    };
    // The span links to the trace of the write that caused this change (when it was traced).
    const writer = change.traceparent ? spanContextFromTraceparent(change.traceparent) : undefined;
    await tracer.startActiveSpan(
      "invalidate product",
      {
        links: writer ? [{ context: writer }] : [],
        attributes: { "flashsale.product_id": change.id, "flashsale.version": change.version },
      },
      async (span) => {
        try {
          await untilRedisAcknowledges(() => invalidateEntity(opts.redis, target), heartbeat, { productId: change.id });
        } finally {
          span.end();
        }
      },
    );
    m.lag.observe(Math.max(0, Date.now() - change.committedAtMs) / 1000);
    m.events.inc({ outcome: "evicted" });
  };

  const handle = async ({ topic, message, heartbeat, partition }: EachMessagePayload): Promise<void> => {
    try {
      await apply(topic, message, heartbeat);
    } catch (err) {
      if (!(err instanceof PoisonMessage)) throw err;
      opts.logger.warn({ topic, partition, offset: message.offset, reason: err.message }, "poison message -> dead-letter topic");
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
    }
  };

  await consumer.run({ eachMessage: handle });
  opts.logger.info({ topics: [productsTopic, inventoryTopic], groupId: opts.groupId }, "invalidator consuming");

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
      help: "Evictions retried because RedisClient failed",
      registers: [registry],
    }),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
