import type { FastifyPluginAsyncJsonSchemaToTs } from "@fastify/type-provider-json-schema-to-ts";
import { createProduct, deleteProduct, importListPrices, setListPrice, setSale, UnknownProductsError } from "@flashsale/db";
import { errorBodySchema, HttpError, protectWithBearer } from "@flashsale/http";
import { PRODUCT_WRITE_PATH_DELETE_FENCE_VERSION } from "@flashsale/product-cache";
import { currentTraceparent } from "@flashsale/telemetry";
import type { CatalogDeps } from "../deps.ts";
import { MAX_IMPORT_ROWS, parsePriceImport } from "../import-parser.ts";
import { productIdParams, productSchema } from "../product-schema.ts";
import type { EvictAfterWrite } from "./write-eviction.ts";

const cents = { type: "integer", minimum: 0, maximum: 100_000_000 } as const;
/** Free text: Postgres text cannot hold NUL, so it is refused here rather than failing in the database. */
const text = { type: "string", pattern: "^[^\\u0000]*$" } as const;
const IMPORT_BODY_LIMIT = 16 * 1024 * 1024;

/**
 * Admin writes. Every write reaches Redis through Postgres -> Debezium -> Kafka -> invalidator,
 * exactly like a raw SQL write would; after its commit, a price, sale, import, create or delete also evicts
 * the products it changed itself (`evictAfterWrite`: read-your-writes for the admin, never failing
 * the write; write-eviction.ts).
 */
export const adminRoutes: FastifyPluginAsyncJsonSchemaToTs<{ Options: { deps: CatalogDeps; evictAfterWrite: EvictAfterWrite } }> = async (
  app,
  { deps, evictAfterWrite },
) => {
  protectWithBearer(app, deps.adminToken);
  app.addContentTypeParser(
    ["text/csv", "application/x-ndjson", "application/jsonl"],
    { parseAs: "string", bodyLimit: IMPORT_BODY_LIMIT },
    (_req, body, done) => done(null, body),
  );

  app.put(
    "/admin/products/:id/price",
    {
      schema: {
        params: productIdParams,
        body: { type: "object", required: ["listPriceCents"], properties: { listPriceCents: cents }, additionalProperties: false },
        response: { 200: productSchema, 404: errorBodySchema },
      },
    },
    async (request) => {
      const id = Number(request.params.id);
      const product = await setListPrice(deps.db, id, request.body.listPriceCents, { traceparent: currentTraceparent() });
      if (!product) throw new HttpError(404, "NOT_FOUND", `product ${id} not found`);
      await evictAfterWrite([{ id: product.id, version: product.version }]);
      return product;
    },
  );

  app.delete(
    "/admin/products/:id",
    {
      schema: {
        description:
          "Deletes a product. Its lines leave every cart (shown there as unavailable: PRODUCT_DELETED); a raw SQL DELETE does the same. A product that appears in orders cannot be deleted (409 PRODUCT_IN_ORDERS). The cache is evicted after the commit (read-your-writes) and through CDC.",
        params: productIdParams,
        response: {
          200: {
            type: "object",
            required: ["id", "cartLinesRemoved"],
            properties: { id: { type: "integer" }, cartLinesRemoved: { type: "integer" } },
          },
          404: errorBodySchema,
          409: errorBodySchema,
        },
      },
    },
    async (request) => {
      const id = Number(request.params.id);
      const result = await deleteProduct(deps.db, id);
      if (result.kind === "not_found") throw new HttpError(404, "NOT_FOUND", `product ${id} not found`);
      if (result.kind === "in_orders") {
        throw new HttpError(409, "PRODUCT_IN_ORDERS", `product ${id} appears in orders; orders keep their lines, so it cannot be deleted`);
      }
      // Fenced above every version, so no fill of the row read before the delete passes; with the
      // write path's own value, which a CDC event still on its way cannot replace (product-cache).
      await evictAfterWrite([{ id, version: PRODUCT_WRITE_PATH_DELETE_FENCE_VERSION }]);
      return { id, cartLinesRemoved: result.cartLinesRemoved };
    },
  );

  app.post(
    "/admin/products",
    {
      schema: {
        body: {
          type: "object",
          required: ["sku", "name", "listPriceCents", "stock"],
          properties: {
            sku: { type: "string", pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$" },
            name: { ...text, minLength: 1, maxLength: 200 },
            description: { ...text, maxLength: 5000 },
            currency: { type: "string", pattern: "^[A-Z]{3}$" },
            listPriceCents: cents,
            stock: { type: "integer", minimum: 0, maximum: 10_000_000 },
          },
          additionalProperties: false,
        },
        response: { 201: productSchema, 409: errorBodySchema },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const product = await createProduct(
        deps.db,
        {
          sku: b.sku,
          name: b.name,
          description: b.description ?? "",
          currency: b.currency ?? "USD",
          listPriceCents: b.listPriceCents,
          stock: b.stock,
        },
        { traceparent: currentTraceparent() },
      );
      if (!product) throw new HttpError(409, "SKU_EXISTS", `sku ${b.sku} already exists`);
      // A "no such product" cached by an earlier read of this id (negative caching) goes too.
      await evictAfterWrite([{ id: product.id, version: product.version }]);
      return reply.status(201).send(product);
    },
  );

  app.post(
    "/admin/sales",
    {
      // Room for the schema's 10,000 ids (up to ~17 bytes each); the default 64 KiB is not.
      bodyLimit: 256 * 1024,
      schema: {
        body: {
          type: "object",
          required: ["productIds", "startsAt", "endsAt"],
          properties: {
            productIds: {
              type: "array",
              minItems: 1,
              maxItems: 10_000,
              uniqueItems: true,
              items: { type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
            },
            salePriceCents: cents,
            percentOff: { type: "integer", minimum: 1, maximum: 99 },
            startsAt: { type: "string", format: "date-time" },
            endsAt: { type: "string", format: "date-time" },
          },
          oneOf: [{ required: ["salePriceCents"] }, { required: ["percentOff"] }],
          additionalProperties: false,
        },
        response: {
          201: {
            description: "the sale is set on every product (all or nothing)",
            type: "object",
            required: ["productIds", "startsAt", "endsAt"],
            additionalProperties: false,
            properties: {
              productIds: { type: "array", items: { type: "integer" } },
              startsAt: { type: "string", format: "date-time" },
              endsAt: { type: "string", format: "date-time" },
            },
          },
          400: { ...errorBodySchema, description: "VALIDATION_FAILED, UNKNOWN_PROPERTY or INVALID_SALE_WINDOW" },
          404: { ...errorBodySchema, description: "NOT_FOUND: unknown product ids (listed in productIds); nothing was written" },
        },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const startsAt = new Date(b.startsAt);
      const endsAt = new Date(b.endsAt);
      if (!(startsAt < endsAt)) throw new HttpError(400, "INVALID_SALE_WINDOW", "startsAt must be before endsAt");
      const price = b.salePriceCents !== undefined ? { salePriceCents: b.salePriceCents } : { percentOff: b.percentOff as number };
      let updated: Awaited<ReturnType<typeof setSale>>;
      try {
        updated = await setSale(deps.db, { productIds: b.productIds, startsAt, endsAt, ...price }, { traceparent: currentTraceparent() });
      } catch (err) {
        if (!(err instanceof UnknownProductsError)) throw err;
        throw new HttpError(404, "NOT_FOUND", "unknown product ids; no sale was created", { productIds: err.productIds });
      }
      await evictAfterWrite(updated);
      return reply
        .status(201)
        .send({ productIds: updated.map((u) => u.id), startsAt: startsAt.toISOString(), endsAt: endsAt.toISOString() });
    },
  );

  app.post(
    "/admin/import",
    {
      bodyLimit: IMPORT_BODY_LIMIT,
      // Before the body schema: a JSON or missing body is the wrong media type (415), not a bad value.
      preValidation: async (request) => {
        if (typeof request.body !== "string") {
          throw new HttpError(415, "UNSUPPORTED_MEDIA_TYPE", "send text/csv or application/x-ndjson");
        }
      },
      schema: {
        description: `CSV (text/csv, header with sku,listPriceCents) or JSON lines (application/x-ndjson); at most ${MAX_IMPORT_ROWS} rows. One set-based UPDATE; the changed products are evicted after the commit (and through CDC).`,
        consumes: ["text/csv", "application/x-ndjson"],
        // Declared so the document has a request body for each media type (it had none); the
        // text itself is checked by parsePriceImport, line by line.
        body: { type: "string", description: "the file: CSV with a sku,listPriceCents header, or one JSON object per line" },
        response: {
          200: {
            description: "what the import changed",
            type: "object",
            required: ["received", "updated", "unchanged", "unknownSkus"],
            additionalProperties: false,
            properties: {
              received: { type: "integer" },
              updated: { type: "integer" },
              unchanged: { type: "integer" },
              unknownSkus: { type: "array", items: { type: "string" } },
            },
          },
          400: { ...errorBodySchema, description: "INVALID_IMPORT or DUPLICATE_SKU (the line in `line`)" },
          413: { ...errorBodySchema, description: "PAYLOAD_TOO_LARGE (over 16 MB) or IMPORT_TOO_LARGE (too many rows)" },
        },
      },
    },
    async (request) => {
      const rows = parsePriceImport(request.body, request.headers["content-type"] ?? "");
      const result = await importListPrices(deps.db, rows, { traceparent: currentTraceparent() });
      await evictAfterWrite(result.changed);
      return result;
    },
  );
};
