import type { Logger } from "@flashsale/telemetry";
import type { Kafka } from "kafkajs";
import { Gauge, type Registry } from "prom-client";

/**
 * Consumer lag (messages not yet processed) per topic, from the group's committed
 * offsets and the topics' high-water marks, refreshed every `intervalMs`.
 */
export function startConsumerLagGauge(opts: {
  kafka: Kafka;
  groupId: string;
  topics: string[];
  intervalMs: number;
  metrics: Registry;
  logger: Logger;
}): { stop(): Promise<void> } {
  const lag = new Gauge({
    name: "invalidator_consumer_lag_messages",
    help: "Messages behind the topic's end, per topic",
    labelNames: ["topic"],
    registers: [opts.metrics],
  });
  const admin = opts.kafka.admin();
  let connected: Promise<void> | null = null;
  const timer = setInterval(async () => {
    try {
      connected ??= admin.connect();
      await connected;
      const committed = await admin.fetchOffsets({ groupId: opts.groupId, topics: opts.topics });
      for (const t of committed) {
        const ends = await admin.fetchTopicOffsets(t.topic);
        let behind = 0;
        for (const p of t.partitions) {
          const end = Number(ends.find((e) => e.partition === p.partition)?.high ?? 0);
          const at = Math.max(0, Number(p.offset)); // -1: nothing committed yet
          behind += Math.max(0, end - at);
        }
        lag.set({ topic: t.topic }, behind);
      }
    } catch (err) {
      connected = null;
      opts.logger.debug({ err: (err as Error).message }, "consumer lag refresh failed");
    }
  }, opts.intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await admin.disconnect().catch(() => {});
    },
  };
}
