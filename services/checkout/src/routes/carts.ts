import { type Cart, createCart, findCart, findOrder, findProduct, upsertCartItem } from "@flashsale/db";
import { errorBodySchema, HttpError } from "@flashsale/http";
import { isBulkheadRejectedError } from "cockatiel";
import type { FastifyInstance } from "fastify";
import type { CheckoutDeps } from "../app.ts";
import { checkout } from "../checkout-flow.ts";

const uuidParams = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "string", format: "uuid" } },
} as const;

const orderSchema = {
  type: "object",
  required: ["id", "items", "totalCents"],
  properties: {
    id: { type: "string" },
    cartId: { type: "string" },
    items: {
      type: "array",
      items: {
        type: "object",
        required: ["productId", "quantity", "unitPriceCents"],
        properties: { productId: { type: "integer" }, quantity: { type: "integer" }, unitPriceCents: { type: "integer" } },
      },
    },
    totalCents: { type: "integer" },
    createdAt: { type: "string", format: "date-time" },
  },
} as const;

const cartSchema = {
  type: "object",
  required: ["id", "items"],
  properties: {
    id: { type: "string" },
    userId: { type: ["string", "null"] },
    items: {
      type: "array",
      items: {
        type: "object",
        properties: {
          productId: { type: "integer" },
          quantity: { type: "integer" },
          priceCentsSeen: { type: "integer" },
          versionSeen: { type: "integer" },
          currentPriceCents: { type: ["integer", "null"] },
          priceChanged: { type: "boolean" },
        },
      },
    },
  },
} as const;

/** Adds each line's current price, read through the product cache (display only). */
async function withCurrentPrices(deps: CheckoutDeps, cart: Cart) {
  const items = await Promise.all(
    cart.items.map(async (line) => {
      const current = (await deps.productCache.get(line.productId, () => findProduct(deps.db, line.productId))).value;
      const currentPriceCents = current?.priceCents ?? null;
      return { ...line, currentPriceCents, priceChanged: currentPriceCents !== line.priceCentsSeen };
    }),
  );
  return { ...cart, items };
}

/** Postgres saturated (pool wait or transaction start timed out): tell the client to come back. */
function isDbBusy(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return (
    e?.code === "P2028" ||
    e?.code === "P2024" ||
    /timeout exceeded when trying to connect|Unable to start a transaction/i.test(e?.message ?? "")
  );
}

export async function cartRoutes(app: FastifyInstance, deps: CheckoutDeps, limit: { max: number; windowMs: number }): Promise<void> {
  app.post<{ Body: { userId?: string } | undefined }>(
    "/carts",
    {
      schema: {
        body: {
          type: ["object", "null"],
          properties: { userId: { type: "string", minLength: 1, maxLength: 128, pattern: "^[^\\u0000]*$" } },
          additionalProperties: false,
        },
        response: { 201: { type: "object", required: ["id"], properties: { id: { type: "string" } } } },
      },
    },
    async (request, reply) => {
      const id = await createCart(deps.db, request.body?.userId ?? null);
      return reply.status(201).send({ id });
    },
  );

  app.post<{ Params: { id: string }; Body: { productId: number; quantity: number } }>(
    "/carts/:id/items",
    {
      schema: {
        params: uuidParams,
        body: {
          type: "object",
          required: ["productId", "quantity"],
          properties: {
            productId: { type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
            quantity: { type: "integer", minimum: 1, maximum: 1000 },
          },
          additionalProperties: false,
        },
        response: { 201: cartSchema, 404: errorBodySchema },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const result = await upsertCartItem(deps.db, id, request.body.productId, request.body.quantity);
      if (result === "cart_not_found") throw new HttpError(404, "CART_NOT_FOUND", `cart ${id} not found`);
      if (result === "product_not_found") throw new HttpError(404, "PRODUCT_NOT_FOUND", `product ${request.body.productId} not found`);
      const cart = await findCart(deps.db, id);
      if (!cart) throw new HttpError(404, "CART_NOT_FOUND", `cart ${id} not found`);
      return reply.status(201).send(await withCurrentPrices(deps, cart));
    },
  );

  app.get<{ Params: { id: string } }>(
    "/carts/:id",
    { schema: { params: uuidParams, response: { 200: cartSchema, 404: errorBodySchema } } },
    async (request) => {
      const cart = await findCart(deps.db, request.params.id);
      if (!cart) throw new HttpError(404, "CART_NOT_FOUND", `cart ${request.params.id} not found`);
      return withCurrentPrices(deps, cart);
    },
  );

  app.post<{ Params: { id: string }; Headers: { "idempotency-key"?: string } }>(
    "/carts/:id/checkout",
    {
      config: {
        rateLimit: {
          max: limit.max,
          timeWindow: limit.windowMs,
          keyGenerator: (req) => String(req.headers["x-user-id"] ?? req.ip),
        },
      },
      schema: {
        params: uuidParams,
        headers: {
          type: "object",
          properties: { "idempotency-key": { type: "string", minLength: 8, maxLength: 128, pattern: "^[A-Za-z0-9_.:-]+$" } },
        },
        response: {
          201: orderSchema,
          404: errorBodySchema,
          409: errorBodySchema,
          422: errorBodySchema,
          429: errorBodySchema,
          503: errorBodySchema,
        },
      },
    },
    async (request, reply) => {
      const key = request.headers["idempotency-key"];
      if (!key) throw new HttpError(400, "IDEMPOTENCY_KEY_REQUIRED", "send an Idempotency-Key header (8-128 chars)");
      let outcome: Awaited<ReturnType<typeof checkout>>;
      try {
        outcome = await checkout(deps.flow, request.params.id, key);
      } catch (err) {
        if (isBulkheadRejectedError(err) || isDbBusy(err)) {
          deps.outcomes.inc({ outcome: "overloaded" });
          throw new HttpError(503, "OVERLOADED", "checkout is saturated; retry shortly", {}, { "retry-after": "1" }, err);
        }
        throw err;
      }
      deps.outcomes.inc({ outcome: outcome.kind });
      switch (outcome.kind) {
        case "placed":
          if (outcome.replayed) reply.header("idempotent-replayed", "true");
          return reply.status(201).send(outcome.order);
        case "price_changed":
          throw new HttpError(409, "PRICE_CHANGED", "a price changed since it was added to the cart; re-add the line to accept it", {
            items: outcome.items,
          });
        case "out_of_stock":
          throw new HttpError(409, "OUT_OF_STOCK", "not enough stock", { items: outcome.items });
        case "cart_empty":
          throw new HttpError(409, "CART_EMPTY", "the cart has no items");
        case "cart_not_found":
          throw new HttpError(404, "CART_NOT_FOUND", `cart ${request.params.id} not found`);
        case "idempotency_key_reused":
          throw new HttpError(422, "IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used for another cart");
      }
    },
  );

  app.get<{ Params: { id: string } }>(
    "/orders/:id",
    { schema: { params: uuidParams, response: { 200: orderSchema, 404: errorBodySchema } } },
    async (request) => {
      const order = await findOrder(deps.db, request.params.id);
      if (!order) throw new HttpError(404, "NOT_FOUND", `order ${request.params.id} not found`);
      return order;
    },
  );
}
