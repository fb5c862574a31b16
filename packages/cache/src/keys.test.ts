import calculateSlot from "cluster-key-slot";
import { describe, expect, it } from "vitest";
import { entityKeys, keyPrefix, parseKey, scanPattern, slotKeys, tagForSlot, valueKeyOf } from "./keys.ts";

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

describe("layout helpers", () => {
  it("gives every schema version a prefix that no other version's prefix overlaps", () => {
    expect(keyPrefix(1)).toBe("catalog:v1:");
    expect(keyPrefix(10).startsWith(keyPrefix(1))).toBe(false);
    expect(entityKeys(1, "product", 5).value.startsWith(keyPrefix(1))).toBe(true);
  });

  it("parses what entityKeys builds, and nothing else", () => {
    const k = entityKeys(7, "product", 42);
    expect(parseKey(k.value)).toEqual({ schemaVersion: 7, entity: "product", id: "42", part: "value" });
    expect(parseKey(k.lease)?.part).toBe("lease");
    expect(parseKey(k.fence)?.part).toBe("fence");
    expect(parseKey("stock:{product:42}:avail")).toBeNull();
    expect(parseKey("catalog:v7:{product:42}:other")).toBeNull();
  });

  it("scans one version or all of them", () => {
    expect(scanPattern("product", 3)).toBe("catalog:v3:{product:*}");
    expect(scanPattern("product")).toBe("catalog:v*:{product:*}");
  });

  it("maps a sibling to its value key", () => {
    const k = entityKeys(1, "product", 9);
    expect([k.value, k.lease, k.fence].map(valueKeyOf)).toEqual([k.value, k.value, k.value]);
  });

  it("puts each entity's incarnation marker and fence index in the entity's own slot, outside every prefix", () => {
    for (let id = 1; id <= 2_000; id++) {
      const k = entityKeys(1, "product", id);
      const s = slotKeys(k.value);
      expect([calculateSlot(s.incarnation), calculateSlot(s.fences)]).toEqual([calculateSlot(k.value), calculateSlot(k.value)]);
      expect(parseKey(s.incarnation) ?? parseKey(s.fences)).toBeNull();
      expect(s.fences.startsWith(keyPrefix(1))).toBe(false);
    }
    expect(calculateSlot(tagForSlot(0))).toBe(0);
    expect(calculateSlot(tagForSlot(16_383))).toBe(16_383);
  });
});
