/** JSON schema of Product (design.md §7); drives response serialization and OpenAPI. */
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
} as const;

export const productIdParams = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "string", pattern: "^[1-9][0-9]{0,14}$" } },
} as const;
