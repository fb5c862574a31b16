import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ERROR_CODES, errorBodySchema } from "../src/index.ts";

/**
 * One catalogue of error codes (src/error-codes.ts): README's table must list exactly its codes with
 * its descriptions, and the OpenAPI error schema is generated from it.
 */
const README = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");

function readmeCodes(): Map<string, string> {
  const section = README.split("### Error codes")[1]?.split("\n## ")[0] ?? "";
  const rows = [...section.matchAll(/^\| `([A-Z_]+)` \| (.*) \|$/gm)];
  return new Map(rows.map((m) => [m[1] as string, m[2] as string]));
}

describe("error catalogue", () => {
  it("README's error-code table lists exactly the catalogue, with its descriptions", () => {
    const documented = readmeCodes();
    expect([...documented.keys()].sort()).toEqual(Object.keys(ERROR_CODES).sort());
    for (const [code, description] of Object.entries(ERROR_CODES)) expect(documented.get(code), code).toBe(description);
  });

  it("the OpenAPI error schema's code enum is the catalogue", () => {
    expect([...errorBodySchema.properties.error.enum].sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });

  it("every code README's API section names exists in the catalogue", () => {
    const api = README.split("## API")[1]?.split("\n## ")[0] ?? "";
    const named = new Set([...api.matchAll(/`([A-Z][A-Z_]{3,})`/g)].map((m) => m[1] as string));
    // Upper-case words in backticks that are not error codes: X-Cache values, enum values, variables, SQL.
    const notCodes = new Set(["HIT", "MISS", "STALE", "BYPASS", "PRODUCT_DELETED", "ADMIN_TOKEN", "DELETE", "UPDATE", "INSERT", "SELECT"]);
    const unknown = [...named].filter((c) => !(c in ERROR_CODES) && !notCodes.has(c));
    expect(unknown).toEqual([]);
  });
});
