import type { RedisClient, VersionedCache } from "@flashsale/cache";
import type { Db, Product } from "@flashsale/db";
import type { FastifyRequest } from "fastify";
import type { Counter } from "prom-client";
import type { CheckoutFlowDeps } from "./checkout-flow.ts";

/** What the checkout's route plugins need, declared once (app.ts builds it; routes/ receive it). */
export interface CheckoutDeps {
  db: Db;
  redis: RedisClient;
  /** Current prices for display (GET /carts/:id); never used to charge. */
  productCache: VersionedCache<Product>;
  flow: CheckoutFlowDeps;
  outcomes: Counter<"outcome">;
  /** A cart or checkout request not decided within this answers 503 (app.ts BuildCheckoutOptions). */
  checkoutDeadlineMs?: number;
}

/** The checkout rate limit: counts one attempt of this principal; throws 429 past the limit. */
export type Admit = (request: FastifyRequest) => Promise<void>;
