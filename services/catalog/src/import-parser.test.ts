import { describe, expect, it } from "vitest";
import { parsePriceImport } from "./import-parser.ts";

describe("parsePriceImport", () => {
  it("parses CSV with extra columns", () => {
    const rows = parsePriceImport("sku,name,listPriceCents\nA-1,Thing,1999\nB-2,Other,0\n", "text/csv");
    expect(rows).toEqual([
      { sku: "A-1", listPriceCents: 1999 },
      { sku: "B-2", listPriceCents: 0 },
    ]);
  });

  it("parses JSON lines, skipping blank lines", () => {
    const rows = parsePriceImport('{"sku":"A-1","listPriceCents":5}\n\n{"sku":"B","listPriceCents":6}\n', "application/x-ndjson");
    expect(rows).toHaveLength(2);
  });

  it.each([
    ["negative price", "sku,listPriceCents\nA,-1\n", "line 2"],
    ["fractional price", "sku,listPriceCents\nA,1.5\n", "line 2"],
    ["bad sku", "sku,listPriceCents\nA,1\n;drop,2\n", "line 3"],
    ["duplicate sku", "sku,listPriceCents\nA,1\nA,2\n", "appears twice"],
    ["no rows", "sku,listPriceCents\n", "no rows"],
  ])("rejects %s with the line", (_n, body, msg) => {
    expect(() => parsePriceImport(body, "text/csv")).toThrow(msg);
  });

  it("rejects malformed JSON lines with the line number", () => {
    expect(() => parsePriceImport('{"sku":"A","listPriceCents":1}\n{nope\n', "application/x-ndjson")).toThrow("line 2");
  });
});
