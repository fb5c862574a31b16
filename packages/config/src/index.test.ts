import { describe, expect, it } from "vitest";
import { ConfigError, catalogSchema, invalidatorSchema, loadConfig } from "./index.ts";

describe("loadConfig", () => {
  it("fills native defaults", () => {
    const c = loadConfig(catalogSchema, {});
    expect(c.PORT).toBe(3001);
    expect(c.CACHE_TTL_SECONDS).toBe(86_400);
  });

  it("fails fast naming the bad variable", () => {
    expect(() => loadConfig(catalogSchema, { PORT: "seventy" })).toThrow(ConfigError);
    expect(() => loadConfig(catalogSchema, { ADMIN_TOKEN: "short" })).toThrow(/ADMIN_TOKEN/);
  });

  it("splits the broker list", () => {
    expect(loadConfig(invalidatorSchema, { KAFKA_BROKERS: "a:1, b:2" }).KAFKA_BROKERS).toEqual(["a:1", "b:2"]);
  });
});
