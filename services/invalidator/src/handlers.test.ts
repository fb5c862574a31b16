import { describe, expect, it } from "vitest";
import { DELETE_FENCE_VERSION, type ProductChange } from "./change-event.ts";
import { latestPerProduct } from "./handlers.ts";

const change = (id: number, op: ProductChange["op"], version: number): ProductChange => ({
  kind: "product",
  id,
  op,
  version: op === "d" ? DELETE_FENCE_VERSION : version,
  committedAtMs: 0,
  traceparent: null,
});

describe("latestPerProduct (one eviction per product and batch)", () => {
  it("keeps the highest version of updates, whatever their order", () => {
    const m = latestPerProduct([change(1, "u", 5), change(1, "u", 9), change(1, "u", 7)]);
    expect(m.get(1)).toEqual({ version: 9, replacesDeleteFence: true });
  });
  it("a delete last fences at +infinity and replaces nothing", () => {
    const m = latestPerProduct([change(1, "u", 5), change(1, "d", 0)]);
    expect(m.get(1)).toEqual({ version: DELETE_FENCE_VERSION, replacesDeleteFence: false });
  });
  it("an insert after a delete in the same batch wins, and may replace a delete fence", () => {
    const m = latestPerProduct([change(1, "d", 0), change(1, "c", 12), change(2, "c", 3)]);
    expect(m.get(1)).toEqual({ version: 12, replacesDeleteFence: true });
    expect(m.get(2)).toEqual({ version: 3, replacesDeleteFence: true });
  });
});
