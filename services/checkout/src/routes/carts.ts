import type { FastifyPluginAsyncJsonSchemaToTs } from "@fastify/type-provider-json-schema-to-ts";
import {
  type Cart,
  claimCart,
  classifyDbError,
  createCart,
  findCart,
  findOrder,
  findProduct,
  MAX_CART_LINES,
  MAX_CART_UNITS,
  type Principal,
  upsertCartItem,
} from "@flashsale/db";
import { errorBodySchema, HttpError } from "@flashsale/http";
import { isBulkheadRejectedError } from "cockatiel";
import type { FastifyRequest } from "fastify";
import { checkout } from "../checkout-flow.ts";
import type { Admit, CheckoutDeps } from "../deps.ts";

/**
 * Exactly the canonical 8-4-4-4-12 hex form Postgres stores: ajv-formats' "uuid" also
 * accepts a `urn:uuid:` prefix, which Postgres then refuses (was a 500).
 */
const UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
const uuidParams = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "string", format: "uuid", pattern: UUID_PATTERN } },
  additionalProperties: false,
} as const;

/**
 * The principal (README "Trust model"): set by the trusted gateway in front, never by a
 * browser. Absent = an anonymous shopper. Visible ASCII only, as user ids are.
 */
const principalHeader = {
  "x-user-id": {
    type: "string",
    minLength: 1,
    maxLength: 128,
    pattern: "^[!-~]+$",
    description: "the signed-in user, set by the gateway (absent: anonymous)",
  },
} as const;
const principalHeaders = { type: "object", properties: principalHeader } as const;

function principalOf(request: FastifyRequest): Principal {
  const id = request.headers["x-user-id"];
  return typeof id === "string" ? id : null;
}

// Response schemas are closed (additionalProperties: false): what they list is all a client
// gets, and the handlers' return values are type-checked against them (type provider).
const retryAfterHeader = { type: "string", description: "seconds to wait before retrying" } as const;

const orderSchema = {
  type: "object",
  required: ["id", "items", "totalCents"],
  additionalProperties: false,
  properties: {
    id: { type: "string" },
    cartId: { type: "string", description: "only for the order's owner" },
    items: {
      type: "array",
      items: {
        type: "object",
        required: ["productId", "quantity", "unitPriceCents"],
        additionalProperties: false,
        properties: { productId: { type: "integer" }, quantity: { type: "integer" }, unitPriceCents: { type: "integer" } },
      },
    },
    totalCents: { type: "integer" },
    createdAt: { type: "string", format: "date-time" },
  },
} as const;

const cartSchema = {
  type: "object",
  required: ["id", "items", "unavailableItems"],
  additionalProperties: false,
  properties: {
    id: { type: "string" },
    userId: { type: ["string", "null"] },
    items: {
      type: "array",
      items: {
        type: "object",
        required: ["productId", "quantity", "priceCentsSeen", "versionSeen", "currentPriceCents", "priceChanged"],
        additionalProperties: false,
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
    unavailableItems: {
      type: "array",
      description: "lines removed because their product was deleted; never checked out",
      items: {
        type: "object",
        required: ["productId", "quantity", "priceCentsSeen", "reason", "removedAt"],
        additionalProperties: false,
        properties: {
          productId: { type: "integer" },
          quantity: { type: "integer" },
          priceCentsSeen: { type: "integer" },
          reason: { type: "string", enum: ["PRODUCT_DELETED"] },
          removedAt: { type: "string", format: "date-time" },
        },
      },
    },
  },
} as const;

/** Load shed anywhere on a route (a bulkhead full, the pool or a lock wait timed out) is 503, never 500. */
function overloaded(err: unknown): HttpError | null {
  if (!isBulkheadRejectedError(err) && classifyDbError(err) !== "busy") return null;
  return new HttpError(503, "OVERLOADED", "the service is saturated; retry shortly", {}, { "retry-after": "1" }, err);
}

/** Adds each line's current price, read through the product cache (display only). */
async function withCurrentPrices(deps: CheckoutDeps, cart: Cart) {
  try {
    return await currentPrices(deps, cart);
  } catch (err) {
    throw overloaded(err) ?? err;
  }
}

async function currentPrices(deps: CheckoutDeps, cart: Cart) {
  const items = await Promise.all(
    cart.items.map(async (line) => {
      const current = (await deps.productCache.get(line.productId, () => findProduct(deps.db, line.productId))).value;
      const currentPriceCents = current?.priceCents ?? null;
      return { ...line, currentPriceCents, priceChanged: currentPriceCents !== line.priceCentsSeen };
    }),
  );
  return { ...cart, items };
}

const cartNotFound = (id: string) => new HttpError(404, "CART_NOT_FOUND", `cart ${id} not found`);

/** Carts, checkout and orders. Handler types come from the route schemas (type provider). */
export const cartRoutes: FastifyPluginAsyncJsonSchemaToTs<{ Options: { deps: CheckoutDeps; admit: Admit } }> = async (
  app,
  { deps, admit },
) => {
  // Every route of this plugin is answered within the deadline (withinDeadline): each reads or
  // writes Postgres in several statements, each bounded on its own.
  app.addHook("onRoute", (route) => {
    const handler = route.handler;
    route.handler = function (this: typeof app, request, reply) {
      return withinDeadline(Promise.resolve(handler.call(this, request, reply)), deps.checkoutDeadlineMs);
    } as typeof route.handler;
  });
  app.post(
    "/carts",
    {
      schema: {
        description: "A new cart, owned by the X-User-Id principal, or anonymous (its id is then the capability to use it).",
        headers: principalHeaders,
        body: { type: "object", properties: {}, additionalProperties: false },
        response: { 201: { type: "object", required: ["id"], properties: { id: { type: "string" } } } },
      },
    },
    async (request, reply) => {
      const id = await createCart(deps.db, principalOf(request));
      return reply.status(201).send({ id });
    },
  );

  app.post(
    "/carts/:id/items",
    {
      schema: {
        params: uuidParams,
        headers: principalHeaders,
        body: {
          type: "object",
          required: ["productId", "quantity"],
          properties: {
            productId: { type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
            quantity: { type: "integer", minimum: 1, maximum: 1000 },
          },
          additionalProperties: false,
        },
        response: {
          201: cartSchema,
          404: errorBodySchema,
          400: { ...errorBodySchema, description: "CART_FULL: past the cart's limit of distinct products or units (or another 400)" },
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const principal = principalOf(request);
      await claimCart(deps.db, id, principal);
      const result = await upsertCartItem(deps.db, id, principal, request.body.productId, request.body.quantity);
      if (result === "cart_not_found") throw cartNotFound(id);
      if (result === "product_not_found") throw new HttpError(404, "PRODUCT_NOT_FOUND", `product ${request.body.productId} not found`);
      if (result === "cart_full") {
        throw new HttpError(
          400,
          "CART_FULL",
          `a cart holds at most ${MAX_CART_LINES} distinct products; change an existing line or check out`,
          {
            maxLines: MAX_CART_LINES,
          },
        );
      }
      if (result === "too_many_units") {
        throw new HttpError(400, "CART_FULL", `a cart holds at most ${MAX_CART_UNITS} units in all; lower a quantity or check out`, {
          maxUnits: MAX_CART_UNITS,
        });
      }
      const cart = await findCart(deps.db, id, principal);
      if (!cart) throw cartNotFound(id);
      return reply.status(201).send(await withCurrentPrices(deps, cart));
    },
  );

  app.get(
    "/carts/:id",
    { schema: { params: uuidParams, headers: principalHeaders, response: { 200: cartSchema, 404: errorBodySchema } } },
    async (request) => {
      const principal = principalOf(request);
      await claimCart(deps.db, request.params.id, principal);
      const cart = await findCart(deps.db, request.params.id, principal);
      if (!cart) throw cartNotFound(request.params.id);
      return withCurrentPrices(deps, cart);
    },
  );

  app.post(
    "/carts/:id/checkout",
    {
      schema: {
        params: uuidParams,
        headers: {
          type: "object",
          properties: {
            ...principalHeader,
            "idempotency-key": { type: "string", minLength: 8, maxLength: 128, pattern: "^[A-Za-z0-9_.:-]+$" },
          },
        },
        // Headers these answers carry are declared here (contract.ts adds X-Request-Id, and 503
        // OVERLOADED/DB_UNAVAILABLE with Retry-After), so the document lists every header the service sends.
        response: {
          201: {
            ...orderSchema,
            description: "the order (placed now, or the stored one for a repeated key on the unchanged cart)",
            headers: {
              "idempotent-replayed": { type: "string", enum: ["true"], description: "present on a replay: the order was placed earlier" },
            },
          },
          400: {
            ...errorBodySchema,
            description: "IDEMPOTENCY_KEY_REQUIRED; CART_FULL for a cart past a checkout's limits (`maxLines`/`maxUnits`); or another 400",
          },
          404: errorBodySchema,
          409: errorBodySchema,
          422: errorBodySchema,
          429: { ...errorBodySchema, description: "RATE_LIMITED", headers: { "retry-after": retryAfterHeader } },
        },
      },
    },
    async (request, reply) => {
      const key = request.headers["idempotency-key"];
      if (!key) throw new HttpError(400, "IDEMPOTENCY_KEY_REQUIRED", "send an Idempotency-Key header (8-128 chars)");
      const req = { cartId: request.params.id, principal: principalOf(request), idempotencyKey: key };
      let outcome: Awaited<ReturnType<typeof checkout>>;
      try {
        outcome = await checkout(deps.flow, req, () => admit(request));
      } catch (err) {
        const shed = overloaded(err);
        if (shed) {
          deps.outcomes.inc({ outcome: "overloaded" });
          throw shed;
        }
        throw err; // 429 from admit; database failures are classified by the shared error handler
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
        case "cart_too_large":
          throw new HttpError(
            400,
            "CART_FULL",
            `a checkout takes at most ${outcome.maxLines} distinct products and ${outcome.maxUnits} units; remove some`,
            { maxLines: outcome.maxLines, maxUnits: outcome.maxUnits },
          );
        case "cart_not_found":
          throw cartNotFound(request.params.id);
        case "idempotency_key_reused":
          throw new HttpError(
            422,
            "IDEMPOTENCY_KEY_REUSED",
            "this Idempotency-Key was already used for another cart, or for this cart before it changed; send a new key",
          );
      }
    },
  );

  app.get(
    "/orders/:id",
    { schema: { params: uuidParams, headers: principalHeaders, response: { 200: orderSchema, 404: errorBodySchema } } },
    async (request) => {
      const order = await findOrder(deps.db, request.params.id, principalOf(request));
      if (!order) throw new HttpError(404, "NOT_FOUND", `order ${request.params.id} not found`);
      return order;
    },
  );
};

/**
 * A route's answer within `deadlineMs`, else 503 with its outcome unknown (BuildCheckoutOptions
 * checkoutDeadlineMs). The work itself runs on: a checkout that places the order is replayed by a
 * retry with the same Idempotency-Key; one that does not is checked out by the retry.
 */
async function withinDeadline<T>(work: Promise<T>, deadlineMs: number | undefined): Promise<T> {
  if (!deadlineMs) return work;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new HttpError(
            503,
            "DB_UNAVAILABLE",
            `not decided within ${deadlineMs} ms (the database is not answering); retry (a checkout: with the same Idempotency-Key, which replays the order if one was placed)`,
            {},
            { "retry-after": "1" },
          ),
        ),
      deadlineMs,
    );
  });
  work.catch(() => {}); // decided after the deadline: nobody is waiting for its failure any more
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}
