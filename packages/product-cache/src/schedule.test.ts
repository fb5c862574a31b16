import type { ProductRecord } from "@flashsale/db";
import { describe, expect, it } from "vitest";
import { ProductCache, phaseAt, settle } from "./schedule.ts";

const starts = Date.parse("2026-11-27T00:00:00.000Z");
const ends = Date.parse("2026-11-28T00:00:00.000Z");
const r: Pick<ProductRecord, "listPriceCents" | "sale"> = {
  listPriceCents: 1000,
  sale: { priceCents: 600, startsAt: new Date(starts).toISOString(), endsAt: new Date(ends).toISOString() },
};

/** The rule of the SQL functions product_effective_price_cents / product_next_price_boundary: [startsAt, endsAt). */
describe("phaseAt", () => {
  it("is the list price before the start, the sale price from the start, the list price from the end", () => {
    expect(phaseAt(r, starts - 1)).toEqual({ priceCents: 1000, from: Number.NEGATIVE_INFINITY, until: starts });
    expect(phaseAt(r, starts)).toEqual({ priceCents: 600, from: starts, until: ends });
    expect(phaseAt(r, ends - 1).priceCents).toBe(600);
    expect(phaseAt(r, ends)).toEqual({ priceCents: 1000, from: ends, until: Number.POSITIVE_INFINITY });
    expect(phaseAt({ listPriceCents: 5, sale: null }, 0).until).toBe(Number.POSITIVE_INFINITY);
  });
});

describe("settle", () => {
  it("answers when the whole uncertainty interval lies in one phase", () => {
    expect(settle(r, { lo: starts - 10, hi: starts - 1 })).toMatchObject({ priceCents: 1000 });
    expect(settle(r, { lo: ends - 3, hi: ends - 1 })).toMatchObject({ priceCents: 600 });
  });

  it("asks to wait until the interval is past a boundary it straddles (never guesses a side)", () => {
    expect(settle(r, { lo: ends - 2, hi: ends + 1 })).toEqual({ waitMs: 2 });
    expect(settle(r, { lo: starts - 1, hi: starts })).toEqual({ waitMs: 1 });
  });
});

describe("ProductCache views", () => {
  const record = (version: number, listPriceCents = 1000): ProductRecord => ({
    id: 7,
    sku: "S",
    name: "n",
    description: "",
    currency: "USD",
    listPriceCents,
    sale: { priceCents: 600, startsAt: new Date(starts).toISOString(), endsAt: new Date(ends).toISOString() },
    version,
    updatedAt: new Date(0).toISOString(),
  });
  function setup() {
    let current = record(1);
    let t = starts - 1_000;
    const inner = {
      keys: () => ({ value: "v", lease: "l", fence: "f" }),
      redisCircuit: "closed",
      // A fresh object per read, as a Redis hit parses one.
      get: async () => ({ value: { ...current }, source: "HIT" as const, ageMs: 0 }),
    };
    const cache = new ProductCache(inner, { now: () => ({ lo: t, hi: t + 1 }), calibrate: async () => {} });
    return {
      cache,
      set: (r: ProductRecord) => {
        current = r;
      },
      at: (ms: number) => {
        t = ms;
      },
    };
  }

  it("reuses one serialized body while version and phase hold, across fresh record objects", async () => {
    const { cache } = setup();
    const a = await cache.read(7, async () => null);
    const b = await cache.read(7, async () => null);
    expect(a.view).toBe(b.view);
    expect(JSON.parse(a.view?.body ?? "")).toMatchObject({ priceCents: 1000, validUntil: new Date(starts).toISOString() });
  });

  it("builds a new one after a write (new version) and after a boundary (new phase)", async () => {
    const { cache, set, at } = setup();
    const before = await cache.read(7, async () => null);
    set(record(2, 1100));
    const written = await cache.read(7, async () => null);
    expect(written.view).not.toBe(before.view);
    expect(written.view?.product.priceCents).toBe(1100);
    at(starts + 5);
    const onSale = await cache.read(7, async () => null);
    expect(onSale.view?.product.priceCents).toBe(600);
    expect(onSale.view?.etag).toBe(`"2.${ends}"`);
  });
});
