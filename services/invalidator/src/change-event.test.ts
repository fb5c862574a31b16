import { describe, expect, it } from "vitest";
import { DELETE_FENCE_VERSION, PoisonMessage, parseInventoryChange, parseProductChange, productIdOfKey } from "./change-event.ts";

const buf = (x: unknown) => Buffer.from(JSON.stringify(x));
const source = { table: "products", ts_ms: 1_700_000_000_000 };

describe("parseProductChange", () => {
  it("reads id, new version and commit time of an update", () => {
    const e = parseProductChange(buf({ id: 7 }), buf({ before: null, after: { id: 7, version: 12 }, source, op: "u" }));
    expect(e).toEqual({ kind: "product", id: 7, version: 12, op: "u", committedAtMs: source.ts_ms, traceparent: null });
  });

  it("carries the writer's traceparent, ignoring malformed ones", () => {
    const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const ok = parseProductChange(null, buf({ after: { id: 7, version: 2, change_traceparent: tp }, source, op: "u" }));
    expect(ok).toMatchObject({ traceparent: tp });
    const bad = parseProductChange(null, buf({ after: { id: 7, version: 2, change_traceparent: "x; drop" }, source, op: "u" }));
    expect(bad).toMatchObject({ traceparent: null });
  });

  it("fences a delete forever (no fill may pass)", () => {
    const e = parseProductChange(buf({ id: 7 }), buf({ before: { id: 7, version: 3 }, after: null, source, op: "d" }));
    expect(e).toMatchObject({ kind: "product", id: 7, version: DELETE_FENCE_VERSION });
  });

  it("takes the id from the key when the delete's before image has only the key (default replica identity)", () => {
    const e = parseProductChange(buf({ id: 9 }), buf({ before: { id: null }, after: null, source, op: "d" }));
    expect(e).toMatchObject({ id: 9 });
  });

  it("skips tombstones", () => {
    expect(parseProductChange(buf({ id: 7 }), null)).toEqual({ kind: "tombstone" });
  });

  it.each([
    ["not JSON", Buffer.from("{oops")],
    ["unknown op", buf({ after: { id: 1, version: 1 }, source, op: "x" })],
    ["other table", buf({ after: { id: 1, version: 1 }, source: { ...source, table: "orders" }, op: "u" })],
    ["missing ts", buf({ after: { id: 1, version: 1 }, source: { table: "products" }, op: "u" })],
    ["bad id", buf({ after: { id: "1; drop", version: 1 }, source, op: "u" })],
    ["bad version", buf({ after: { id: 1, version: "9" }, source, op: "u" })],
    ["array", buf([1, 2])],
    ["huge", Buffer.alloc(300 * 1024, 32)],
  ])("rejects %s as poison", (_name, value) => {
    expect(() => parseProductChange(null, value)).toThrow(PoisonMessage);
  });
});

describe("parseInventoryChange", () => {
  const inv = { table: "inventory", ts_ms: 1_700_000_000_000 };
  it("reads product id and available units", () => {
    const e = parseInventoryChange(
      buf({ product_id: 4 }),
      buf({ before: null, after: { product_id: 4, available: 17 }, source: inv, op: "u" }),
    );
    expect(e).toEqual({ kind: "inventory", productId: 4, available: 17, committedAtMs: inv.ts_ms });
  });

  it("reports a deleted row as unknown stock", () => {
    const e = parseInventoryChange(buf({ product_id: 4 }), buf({ before: { product_id: 4 }, after: null, source: inv, op: "d" }));
    expect(e).toMatchObject({ productId: 4, available: null });
  });

  it.each([
    ["negative stock", buf({ after: { product_id: 4, available: -1 }, source: inv, op: "u" })],
    ["products event on the inventory topic", buf({ after: { product_id: 4, available: 1 }, source: source, op: "u" })],
    ["missing product id", buf({ after: { available: 1 }, source: inv, op: "u" })],
  ])("rejects %s as poison", (_n, value) => {
    expect(() => parseInventoryChange(null, value)).toThrow(PoisonMessage);
  });
});

describe("events routed into the products topic", () => {
  it("reads a heartbeat's commit time, whatever its row holds", () => {
    const e = parseProductChange(
      buf({ id: 3 }),
      buf({ after: { id: 3, partition: 2 }, source: { table: "cdc_heartbeat", ts_ms: 5 }, op: "u" }),
    );
    expect(e).toEqual({ kind: "heartbeat", committedAtMs: 5 });
  });

  it("reads a cache epoch's version floor", () => {
    const e = parseProductChange(
      buf({ id: 1 }),
      buf({ after: { id: 1, reason: "TRUNCATE", version_floor: 99 }, source: { table: "cache_epochs", ts_ms: 5 }, op: "c" }),
    );
    expect(e).toEqual({ kind: "retire", reason: "TRUNCATE", versionFloor: 99, committedAtMs: 5 });
  });

  it("reads Debezium's truncate event (no key, no row) as a retirement without a floor", () => {
    const e = parseProductChange(null, buf({ before: null, after: null, source, op: "t" }));
    expect(e).toEqual({ kind: "retire", reason: "TRUNCATE", versionFloor: null, committedAtMs: source.ts_ms });
  });

  it("finds the product id of a poison event's key when there is one", () => {
    expect(productIdOfKey(buf({ id: 42 }))).toBe(42);
    expect(productIdOfKey(Buffer.from("{oops"))).toBeNull();
    expect(productIdOfKey(null)).toBeNull();
    expect(productIdOfKey(buf({ id: "42; drop" }))).toBeNull();
  });
});

describe("the flattened form (ExtractNewRecordState, add.fields=op,table,source.ts_ms)", () => {
  const flat = (x: Record<string, unknown>) => buf({ __deleted: "false", __source_ts_ms: 9, ...x });
  it("reads a products update, a delete (fenced forever), a heartbeat and an epoch", () => {
    expect(
      parseProductChange(buf({ id: 7 }), flat({ id: 7, version: 12, change_traceparent: null, __op: "u", __table: "products" })),
    ).toEqual({
      kind: "product",
      id: 7,
      version: 12,
      op: "u",
      committedAtMs: 9,
      traceparent: null,
    });
    expect(
      parseProductChange(buf({ id: 7 }), flat({ id: 7, version: 1, __op: "d", __table: "products", __deleted: "true" })),
    ).toMatchObject({
      id: 7,
      version: DELETE_FENCE_VERSION,
    });
    expect(parseProductChange(buf({ id: 2 }), flat({ id: 2, partition: 1, __op: "u", __table: "cdc_heartbeat" }))).toEqual({
      kind: "heartbeat",
      committedAtMs: 9,
    });
    expect(
      parseProductChange(buf({ id: 1 }), flat({ id: 1, reason: "TRUNCATE", version_floor: 40, __op: "c", __table: "cache_epochs" })),
    ).toMatchObject({ kind: "retire", versionFloor: 40 });
  });

  it("reads an inventory change, and rejects another table or a missing commit time as poison", () => {
    const inv = parseInventoryChange(buf({ product_id: 4 }), flat({ product_id: 4, available: 17, __op: "u", __table: "inventory" }));
    expect(inv).toEqual({ kind: "inventory", productId: 4, available: 17, committedAtMs: 9 });
    expect(() => parseProductChange(null, flat({ id: 1, version: 1, __op: "u", __table: "orders" }))).toThrow(PoisonMessage);
    expect(() => parseProductChange(null, buf({ id: 1, version: 1, __op: "u", __table: "products" }))).toThrow(PoisonMessage);
  });
});
