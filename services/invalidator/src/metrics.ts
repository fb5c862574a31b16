import { Counter, Histogram, type Registry } from "prom-client";

export interface InvalidatorMetrics {
  lag: Histogram;
  events: Counter<"outcome">;
  redisRetries: Counter;
}

export function createInvalidatorMetrics(registry: Registry): InvalidatorMetrics {
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
