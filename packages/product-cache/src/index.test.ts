import { type Product, type ProductRecord, productSchema } from "@flashsale/db";
import { describe, expect, it } from "vitest";
import { isProductRecord, toRecord } from "./index.ts";

/** Cached payloads are checked against the stored form of the one Product schema: anything else is a miss, never served. */
const valid: ProductRecord = toRecord(productSchema.examples[0] as Product);

describe("isProductRecord (cached payload validation)", () => {
  it("accepts a product's schedule as the schema defines it, with or without a sale", () => {
    expect(isProductRecord(valid)).toBe(true);
    expect(isProductRecord({ ...valid, sale: null })).toBe(true);
  });

  it.each([
    ["a missing field (an older code version's payload)", (({ updatedAt: _v, ...rest }) => rest)(valid)],
    ["an unknown field (a newer code version's payload)", { ...valid, stock: 3 }],
    ["a payload of the previous stored format (a price computed at fill time)", productSchema.examples[0]],
    ["a retyped field", { ...valid, listPriceCents: "7999" }],
    ["a malformed sale", { ...valid, sale: { priceCents: 1 } }],
    ["a date that is not a date-time", { ...valid, updatedAt: "yesterday" }],
    ["not an object", "product"],
  ])("refuses %s", (_what, payload) => {
    expect(isProductRecord(payload)).toBe(false);
  });
});
