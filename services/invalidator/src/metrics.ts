import { Counter, Histogram, type Registry } from "prom-client";

export interface InvalidatorMetrics {
  lag: Histogram;
  events: Counter<"outcome">;
  redisRetries: Counter;
  deadLettered: Counter<"topic" | "evicted">;
}

export function createInvalidatorMetrics(registry: Registry): InvalidatorMetrics {
  return {
    lag: new Histogram({
      name: "invalidation_lag_seconds",
      help: "Eviction time minus Postgres commit time (Debezium source.ts_ms)",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30],
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
    // Alert on any increase: a change event the invalidator could not read. evicted="true": its key
    // named a product, which was evicted and fenced first; "false": nothing could be evicted.
    deadLettered: new Counter({
      name: "invalidator_dead_lettered_total",
      help: "Change events sent to the dead-letter topic (alert on any increase), by topic and whether the product their key names was evicted first",
      labelNames: ["topic", "evicted"],
      registers: [registry],
    }),
  };
}
