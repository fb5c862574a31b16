import rateLimit from "@fastify/rate-limit";
import type { RedisClient, StockGate, VersionedCache } from "@flashsale/cache";
import { type Db, groupCommit, type OrderPlacer, type Product, placeOrder } from "@flashsale/db";
import { createServiceBase, HttpError, type HttpLimits } from "@flashsale/http";
import type { Logger } from "@flashsale/telemetry";
import { bulkhead } from "cockatiel";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { Counter, Histogram, type Registry } from "prom-client";
import type { CheckoutDeps } from "./deps.ts";
import { cartRoutes } from "./routes/carts.ts";

export interface BuildCheckoutOptions {
  db: Db;
  redis: RedisClient;
  logger: Logger;
  metrics: Registry;
  productCache: VersionedCache<Product>;
  /** null = no stock gate. */
  gate: StockGate | null;
  /** Checkouts in flight (queued for or inside a batch) and how many more may wait; beyond -> 503 OVERLOADED. */
  transactions: { limit: number; queue: number };
  /**
   * Group commit (docs/architecture.md#checkout-invariant): batches in flight at once and the
   * largest batch. null: one checkout per statement. Default: see DEFAULT_GROUP_COMMIT.
   */
  groupCommit?: { lanes: number; maxBatch: number } | null;
  /** Another order placer instead (benchmarks: today's flow as a baseline); overrides groupCommit. */
  orders?: OrderPlacer;
  rateLimit: { max: number; windowMs: number };
  /**
   * A cart or checkout request not decided within this answers 503 (its outcome unknown: a
   * checkout is retried with the same Idempotency-Key, which replays the order if it was placed).
   * Each route runs several statements (e.g. replay check, cart claim, the batch), each bounded on
   * its own (statement timeout; client read timeout), so without this a frozen Postgres could hold
   * a buyer for a multiple of them. Default: none (tests, benchmarks); main.ts sets DB_STATEMENT_TIMEOUT_MS + 1 s.
   */
  checkoutDeadlineMs?: number;
  /** See createServiceBase: per-request DB query counting (opt-in, DB_QUERY_METRICS). */
  trackDbQueries?: boolean;
  /** Request lifetimes (HTTP_* config); defaults from packages/http. */
  limits?: Partial<HttpLimits>;
}

/** Measured in bench/checkout-rush.ts (README "Checkout benchmark"). */
export const DEFAULT_GROUP_COMMIT = { lanes: 2, maxBatch: 64 } as const;

/** The checkout HTTP app, wired but not listening. Prices are only ever charged from Postgres. */
export async function buildCheckoutApp(opts: BuildCheckoutOptions): Promise<FastifyInstance> {
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
    trackDbQueries: opts.trackDbQueries ?? false,
    ...(opts.limits ? { limits: opts.limits } : {}),
    readiness: [
      { name: "postgres", check: async () => void (await opts.db.$queryRaw`SELECT 1`) },
      // The gate and the rate limiter fail open; checkout still works without Redis.
      { name: "redis", check: async () => void (await opts.redis.ping()), required: false },
    ],
  });
  // Per-principal limit on checkout only (docs/architecture.md#checkout-invariant), counted in Redis so it holds across
  // instances. Policy (README "Rate limit"): only attempts that reach the business logic
  // count (called by the checkout flow after validation and after the replay check), so a
  // 400 or an idempotent replay costs nothing. Redis trouble: fail open.
  await app.register(rateLimit, { global: false, redis: opts.redis, nameSpace: "checkout-rl:", skipOnError: true });
  const limiter = app.createRateLimit({
    max: opts.rateLimit.max,
    timeWindow: opts.rateLimit.windowMs,
    keyGenerator: (req) => {
      const user = req.headers["x-user-id"];
      return typeof user === "string" ? `user:${user}` : `ip:${req.ip}`;
    },
  });
  const admit = async (request: FastifyRequest): Promise<void> => {
    const verdict = await limiter(request);
    if (!verdict.isAllowed && verdict.isExceeded) {
      throw new HttpError(
        429,
        "RATE_LIMITED",
        `at most ${verdict.max} checkouts per ${Math.round(opts.rateLimit.windowMs / 1000)} s; retry in ${verdict.ttlInSeconds} s`,
        {},
        { "retry-after": String(Math.max(1, verdict.ttlInSeconds)) },
      );
    }
  };
  const batchSizes = new Histogram({
    name: "checkout_batch_size",
    help: "Checkouts combined into one statement by group commit",
    buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    registers: [opts.metrics],
  });
  const retries = new Counter({
    name: "checkout_batch_retries_total",
    help: "Checkout batches rolled back (deadlock, serialization failure, sale boundary at commit) and tried again",
    registers: [opts.metrics],
  });
  const gc = opts.groupCommit === undefined ? DEFAULT_GROUP_COMMIT : opts.groupCommit;
  const orders = opts.orders
    ? opts.orders
    : gc
      ? groupCommit(opts.db, { ...gc, onBatch: (n) => batchSizes.observe(n), onRetry: () => retries.inc() })
      : { place: (req: Parameters<typeof placeOrder>[1]) => placeOrder(opts.db, req, { onRetry: () => retries.inc() }) };
  const deps: CheckoutDeps = {
    db: opts.db,
    redis: opts.redis,
    productCache: opts.productCache,
    outcomes,
    ...(opts.checkoutDeadlineMs ? { checkoutDeadlineMs: opts.checkoutDeadlineMs } : {}),
    flow: {
      db: opts.db,
      gate: opts.gate,
      orders,
      transactions: bulkhead(opts.transactions.limit, opts.transactions.queue),
      logger: opts.logger,
    },
  };
  await app.register(cartRoutes, { deps, admit });
  return app;
}
