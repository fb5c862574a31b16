import type { FromSchema } from "json-schema-to-ts";

/**
 * THE definition of a Product as the REST contract shows it (docs/architecture.md#rest-contract):
 * one JSON schema, from which the TypeScript type is derived (`Product` below), the HTTP response
 * schema and OpenAPI come (services/catalog), and cached payloads are validated
 * (packages/product-cache). A new field is one edit here; the row mapping (products.ts) then fails
 * to compile until it fills it.
 */
export const productSchema = {
  type: "object",
  required: ["id", "sku", "name", "description", "currency", "priceCents", "listPriceCents", "sale", "version", "updatedAt", "validUntil"],
  additionalProperties: false,
  properties: {
    id: { type: "integer", minimum: 1 },
    sku: { type: "string" },
    name: { type: "string" },
    description: { type: "string" },
    currency: { type: "string" },
    priceCents: { type: "integer", description: "the effective price now: the sale price inside its window, else the list price" },
    listPriceCents: { type: "integer" },
    sale: {
      type: ["object", "null"],
      required: ["priceCents", "startsAt", "endsAt"],
      additionalProperties: false,
      properties: {
        priceCents: { type: "integer" },
        startsAt: { type: "string", format: "date-time" },
        endsAt: { type: "string", format: "date-time" },
      },
    },
    version: { type: "integer", description: "bumped by a trigger on every update (raw SQL included)" },
    updatedAt: { type: "string", format: "date-time" },
    validUntil: {
      type: ["string", "null"],
      format: "date-time",
      description: "the next instant the price changes without a write (sale start or end), null if none is scheduled",
    },
  },
  examples: [
    {
      id: 42,
      sku: "SKU-000042",
      name: "Espresso machine",
      description: "15 bar, steam wand",
      currency: "USD",
      priceCents: 7999,
      listPriceCents: 9999,
      sale: { priceCents: 7999, startsAt: "2026-11-27T00:00:00.000Z", endsAt: "2026-11-28T00:00:00.000Z" },
      version: 7,
      updatedAt: "2026-11-26T09:12:00.000Z",
      validUntil: "2026-11-28T00:00:00.000Z",
    },
  ],
} as const;

export type Product = FromSchema<typeof productSchema>;

/**
 * What the cache stores of a product (docs/architecture.md#price-schedule-and-the-db-clock): the
 * Product without the two clock-dependent fields. The price schedule (list price, sale price and
 * window) is a fact that only a write changes; the effective price and validUntil are computed from
 * it at the DB clock when a response is built (packages/product-cache schedule.ts), so a sale
 * starting or ending expires nothing. Changing this schema changes the stored format: bump
 * CACHE_SCHEMA_VERSION (docs/architecture.md#stored-format).
 */
export const productRecordSchema = {
  type: "object",
  required: ["id", "sku", "name", "description", "currency", "listPriceCents", "sale", "version", "updatedAt"],
  additionalProperties: false,
  properties: {
    id: productSchema.properties.id,
    sku: productSchema.properties.sku,
    name: productSchema.properties.name,
    description: productSchema.properties.description,
    currency: productSchema.properties.currency,
    listPriceCents: productSchema.properties.listPriceCents,
    sale: productSchema.properties.sale,
    version: productSchema.properties.version,
    updatedAt: productSchema.properties.updatedAt,
  },
} as const;

export type ProductRecord = FromSchema<typeof productRecordSchema>;
