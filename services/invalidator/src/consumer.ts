import type { RedisClient } from "@flashsale/cache";
import type { Logger } from "@flashsale/telemetry";
import { type Consumer, type EachMessagePayload, type Kafka, type KafkaMessage, Partitioners, type Producer } from "kafkajs";
import type { Registry } from "prom-client";
import { PoisonMessage, parseInventoryChange, parseProductChange } from "./change-event.ts";
import { type ChangeHandlers, createChangeHandlers } from "./handlers.ts";
import { createInvalidatorMetrics } from "./metrics.ts";
import { type InvalidatorTopics, invalidatorTopics } from "./topics.ts";

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

/**
 * The Kafka side of the invalidator (docs/architecture.md#invalidator): consumes Debezium's topics
 * and hands each decoded change to handlers.ts, which returns once Redis acknowledged. At-least-once:
 * kafkajs commits a message's offset only after its handler returned. Undecodable events go to the
 * dead-letter topic with the reason.
 */
export async function startInvalidator(opts: InvalidatorOptions): Promise<RunningInvalidator> {
  const topics = invalidatorTopics(opts.topicPrefix);
  const metrics = createInvalidatorMetrics(opts.metrics);
  let stopping = false;
  const handlers = createChangeHandlers({ ...opts, metrics, isStopping: () => stopping });
  const consumer: Consumer = opts.kafka.consumer({
    groupId: opts.groupId,
    // A fetch returns as soon as one byte is there; this only bounds idle polling.
    maxWaitTimeInMs: 100,
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
  });
  const producer: Producer = opts.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  let consuming = false;
  consumer.on(consumer.events.GROUP_JOIN, () => {
    consuming = true;
  });
  for (const down of [consumer.events.CRASH, consumer.events.STOP, consumer.events.DISCONNECT]) {
    consumer.on(down, () => {
      consuming = false;
    });
  }

  await ensureTopics(opts.kafka, [...topics.consumed, topics.deadLetter], opts.topicPartitions ?? 3);
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topics: topics.consumed, fromBeginning: (opts.newGroupStartsAt ?? "earliest") === "earliest" });

  const deadLetter = (topic: string, message: KafkaMessage, reason: string) =>
    producer.send({
      topic: topics.deadLetter,
      acks: -1,
      timeout: 10_000,
      messages: [{ key: message.key, value: message.value, headers: { reason, "source-topic": topic, "source-offset": message.offset } }],
    });

  await consumer.run({
    eachMessage: async ({ topic, partition, message, heartbeat }: EachMessagePayload) => {
      try {
        await dispatch(topics, handlers, topic, message, heartbeat);
      } catch (err) {
        if (!(err instanceof PoisonMessage)) throw err;
        opts.logger.warn({ topic, partition, offset: message.offset, reason: err.message }, "poison message -> dead-letter topic");
        await deadLetter(topic, message, err.message);
        metrics.events.inc({ outcome: "dead_lettered" });
      }
    },
  });
  opts.logger.info({ topics: topics.consumed, groupId: opts.groupId }, "invalidator consuming");

  return {
    isConsuming: () => consuming,
    async stop() {
      stopping = true;
      await consumer.disconnect();
      await producer.disconnect();
    },
  };
}

/** Decodes a message of one of our topics and applies it (tombstones carry nothing to apply). */
async function dispatch(
  topics: InvalidatorTopics,
  handlers: ChangeHandlers,
  topic: string,
  message: KafkaMessage,
  heartbeat: () => Promise<void>,
): Promise<void> {
  if (topic === topics.inventory) {
    const change = parseInventoryChange(message.key, message.value);
    if (change.kind !== "tombstone") await handlers.applyInventoryChange(change, heartbeat);
    return;
  }
  const change = parseProductChange(message.key, message.value);
  if (change.kind !== "tombstone") await handlers.applyProductChange(change, heartbeat);
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
