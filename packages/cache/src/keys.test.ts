import { describe, expect, it } from "vitest";
import { entityKeys } from "./keys.ts";

describe("entityKeys", () => {
  it("versions the prefix and hash-tags value, lease and fence into one slot", () => {
    const k = entityKeys(3, "product", 42);
    expect(k.value).toBe("catalog:v3:{product:42}");
    expect(k.lease).toBe("catalog:v3:{product:42}:lease");
    expect(k.fence).toBe("catalog:v3:{product:42}:fence");
    const tag = (key: string) => key.slice(key.indexOf("{") + 1, key.indexOf("}"));
    expect(new Set([tag(k.value), tag(k.lease), tag(k.fence)])).toEqual(new Set(["product:42"]));
  });

  it("retires old entries when the schema version changes", () => {
    expect(entityKeys(1, "product", 1).value).not.toBe(entityKeys(2, "product", 1).value);
  });
});
