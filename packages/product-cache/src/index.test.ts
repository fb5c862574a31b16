import { type Product, productSchema } from "@flashsale/db";
import { describe, expect, it } from "vitest";
import { isProduct } from "./index.ts";

/** Cached payloads are checked against the one Product schema: anything else is a miss, never served. */
const valid: Product = productSchema.examples[0] as Product;

describe("isProduct (cached payload validation)", () => {
  it("accepts a product as the schema defines it, with or without a sale", () => {
    expect(isProduct(valid)).toBe(true);
    expect(isProduct({ ...valid, sale: null, validUntil: null })).toBe(true);
  });

  it.each([
    ["a missing field (an older code version's payload)", (({ validUntil: _v, ...rest }) => rest)(valid)],
    ["an unknown field (a newer code version's payload)", { ...valid, stock: 3 }],
    ["a retyped field", { ...valid, priceCents: "7999" }],
    ["a malformed sale", { ...valid, sale: { priceCents: 1 } }],
    ["a date that is not a date-time", { ...valid, updatedAt: "yesterday" }],
    ["not an object", "product"],
  ])("refuses %s", (_what, payload) => {
    expect(isProduct(payload)).toBe(false);
  });
});
