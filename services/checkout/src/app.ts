import type { Db } from "@flashsale/db";
import { createServiceBase } from "@flashsale/http";
import type { Logger } from "@flashsale/telemetry";
import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import { Counter, type Registry } from "prom-client";
import { cartRoutes } from "./routes/carts.ts";

export interface CheckoutDeps {
  db: Db;
  redis: Redis;
}

/** The checkout HTTP app, wired but not listening. Prices are only ever read from Postgres. */
export async function buildCheckoutApp(opts: CheckoutDeps & { logger: Logger; metrics: Registry }): Promise<FastifyInstance> {
  const outcomes = new Counter({
    name: "checkout_outcomes_total",
    help: "Checkout attempts by outcome",
    labelNames: ["outcome"] as const,
    registers: [opts.metrics],
  });
  const app = await createServiceBase({
    title: "flashsale checkout",
    logger: opts.logger,
    metrics: opts.metrics,
    readiness: [
      { name: "postgres", check: async () => void (await opts.db.$queryRaw`SELECT 1`) },
      { name: "redis", check: async () => void (await opts.redis.ping()) },
    ],
  });
  await app.register(async (scope) => cartRoutes(scope, { db: opts.db, redis: opts.redis }, outcomes));
  return app;
}
