import type { RedisClient } from "@flashsale/cache";
import { createServiceBase, type HttpLimits } from "@flashsale/http";
import type { Logger } from "@flashsale/telemetry";
import type { FastifyInstance } from "fastify";
import type { Registry } from "prom-client";

/** The invalidator's HTTP face: health, readiness and metrics only (docs/architecture.md#invalidator). */
export async function buildInvalidatorApp(opts: {
  redis: RedisClient;
  logger: Logger;
  metrics: Registry;
  isConsuming: () => boolean;
  /** Request lifetimes (HTTP_* config); defaults from packages/http. */
  limits?: Partial<HttpLimits>;
}): Promise<FastifyInstance> {
  return createServiceBase({
    title: "flashsale invalidator",
    logger: opts.logger,
    metrics: opts.metrics,
    ...(opts.limits ? { limits: opts.limits } : {}),
    readiness: [
      { name: "redis", check: async () => void (await opts.redis.ping()) },
      {
        name: "kafka",
        check: async () => {
          if (!opts.isConsuming()) throw new Error("consumer not running");
        },
      },
    ],
  });
}
