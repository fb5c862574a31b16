import type { FastifyPluginAsyncJsonSchemaToTs } from "@fastify/type-provider-json-schema-to-ts";
import { findProduct, listProducts } from "@flashsale/db";
import { documentedResponse, errorBodySchema, HttpError } from "@flashsale/http";
import type { ProductRead } from "@flashsale/product-cache";
import { isBulkheadRejectedError } from "cockatiel";
import type { CatalogDeps } from "../deps.ts";
import { productIdParams, productSchema } from "../product-schema.ts";

const MAX_PAGE = 100;

const xCache = {
  "x-cache": {
    type: "string",
    enum: ["HIT-L1", "HIT", "MISS", "STALE", "BYPASS", "REVALIDATED"],
    description: "which tier answered (README: the consistency protocol); REVALIDATED: checked against Postgres (staleness bound)",
  },
};
const cachedReadHeaders = {
  ...xCache,
  etag: {
    type: "string",
    description: 'identifies the representation: "<version>", or "<version>.<validUntil in epoch ms>" while a sale boundary is scheduled',
  },
  age: { type: "string", description: "seconds since the cached value was read from Postgres" },
  "cache-control": { type: "string", description: "no-cache: revalidate with If-None-Match" },
};
const getProductSchema = {
  operationId: "getProduct",
  summary: "A product, read through the cache",
  params: productIdParams,
  headers: { type: "object", properties: { "if-none-match": { type: "string", description: "an ETag from an earlier answer" } } } as const,
  response: {
    200: documentedResponse(productSchema, "the product at its effective price now", cachedReadHeaders),
    304: documentedResponse({ type: "null" }, "Not Modified: the If-None-Match version is current", cachedReadHeaders),
    404: documentedResponse(errorBodySchema, "NOT_FOUND", xCache),
  },
};

/**
 * A failed cache read: a full fallback queue is 503 OVERLOADED; any other failure goes to the
 * shared error handler, which answers 503 DB_UNAVAILABLE only when packages/db says the
 * database is really unreachable (not for a bug, a bad value or a client hanging up).
 */
function readFailure(err: unknown): unknown {
  return isBulkheadRejectedError(err)
    ? new HttpError(503, "OVERLOADED", "too many uncached reads in flight; retry shortly", {}, { "retry-after": "1" })
    : err;
}

/** Public reads. `GET /products/:id` is cache-aside; listing reads Postgres directly. Types come from the schemas. */
export const productRoutes: FastifyPluginAsyncJsonSchemaToTs<{ Options: { deps: CatalogDeps; onRead?: (id: number) => void } }> = async (
  app,
  { deps, onRead },
) => {
  app.get("/products/:id", { schema: getProductSchema }, async (request, reply) => {
    const id = Number(request.params.id);
    // Inline, not a helper: one promise layer less on the hit path.
    let read: ProductRead;
    try {
      read = await deps.cache.read(id, () => findProduct(deps.db, id));
    } catch (err) {
      throw readFailure(err);
    }
    const view = read.view;
    if (!view) {
      reply.header("x-cache", read.source);
      throw new HttpError(404, "NOT_FOUND", `product ${id} not found`);
    }
    // Demand tracking for the warm-up after a cold start (warm-up.ts): a Map increment, for products
    // that exist only: a flood of unknown ids must not fill the demand set and steer the warm-up.
    onRead?.(id);
    // The view is the product at the DB clock's now, its ETag and its JSON body, built once per
    // cached record and price phase (packages/product-cache schedule.ts): a hit serializes nothing.
    reply.headers({ "x-cache": read.source, age: String(Math.floor(read.ageMs / 1000)), etag: view.etag, "cache-control": "no-cache" });
    if (request.headers["if-none-match"] === view.etag) return reply.status(304).send();
    return reply.type("application/json; charset=utf-8").send(view.body);
  });

  app.get(
    "/products",
    {
      schema: {
        operationId: "listProducts",
        summary: "Products by id, a page at a time (keyset: pass nextCursor back as cursor)",
        querystring: {
          type: "object",
          properties: {
            limit: { type: "integer", minimum: 1, maximum: MAX_PAGE, default: 20 },
            cursor: { type: "string", pattern: "^[0-9]{1,15}$" },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: "object",
            required: ["items", "nextCursor"],
            properties: { items: { type: "array", items: productSchema }, nextCursor: { type: ["string", "null"] } },
          },
        },
      } as const,
    },
    async (request) => {
      const limit = request.query.limit ?? 20;
      const items = await listProducts(deps.db, { limit, afterId: Number(request.query.cursor ?? 0) });
      const last = items.at(-1);
      return { items, nextCursor: items.length === limit && last ? String(last.id) : null };
    },
  );
};
