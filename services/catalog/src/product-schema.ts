/** JSON schema of Product (docs/architecture.md#rest-contract); drives response serialization and OpenAPI. */
export const productSchema = {
  type: "object",
  required: ["id", "sku", "name", "description", "currency", "priceCents", "listPriceCents", "sale", "version", "updatedAt", "validUntil"],
  properties: {
    id: { type: "integer" },
    sku: { type: "string" },
    name: { type: "string" },
    description: { type: "string" },
    currency: { type: "string" },
    priceCents: { type: "integer" },
    listPriceCents: { type: "integer" },
    sale: {
      type: ["object", "null"],
      required: ["priceCents", "startsAt", "endsAt"],
      properties: {
        priceCents: { type: "integer" },
        startsAt: { type: "string", format: "date-time" },
        endsAt: { type: "string", format: "date-time" },
      },
    },
    version: { type: "integer" },
    updatedAt: { type: "string", format: "date-time" },
    validUntil: { type: ["string", "null"], format: "date-time" },
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

export const productIdParams = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "string", pattern: "^[1-9][0-9]{0,14}$", examples: ["42"] } },
} as const;
