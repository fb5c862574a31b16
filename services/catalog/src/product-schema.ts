/** The Product schema is defined once, in packages/db (product-schema.ts); here only the HTTP id parameter. */
export { productSchema } from "@flashsale/db";

export const productIdParams = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "string", pattern: "^[1-9][0-9]{0,14}$", examples: ["42"] } },
} as const;
