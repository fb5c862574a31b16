import { describe, expect, it } from "vitest";
import { ConfigError, catalogSchema, DEV_ADMIN_TOKEN, invalidatorSchema, loadConfig } from "./index.ts";

describe("loadConfig", () => {
  it("fills native defaults", () => {
    const c = loadConfig(catalogSchema, { FLASHSALE_DEV: "1" });
    expect(c.PORT).toBe(3001);
    expect(c.CACHE_TTL_SECONDS).toBe(86_400);
    expect(c.ADMIN_TOKEN).toBe(DEV_ADMIN_TOKEN);
    // The services' default role is the unprivileged one (infra/postgres/init.sql), never the owner.
    expect(new URL(c.DATABASE_URL).username).toBe("flashsale_app");
  });

  it("refuses the public default admin token outside development mode, naming the variable", () => {
    for (const env of [{}, { ADMIN_TOKEN: DEV_ADMIN_TOKEN }, { ADMIN_TOKEN: DEV_ADMIN_TOKEN, FLASHSALE_DEV: "0" }]) {
      expect(() => loadConfig(catalogSchema, env)).toThrow(/ADMIN_TOKEN: ADMIN_TOKEN is unset or the public development default/);
    }
    expect(() => loadConfig(catalogSchema, { FLASHSALE_DEV: "yes" })).toThrow(/FLASHSALE_DEV/);
    expect(loadConfig(catalogSchema, { ADMIN_TOKEN: "a-real-secret-of-32-characters!!" }).ADMIN_TOKEN).toBe(
      "a-real-secret-of-32-characters!!",
    );
    expect(loadConfig(catalogSchema, { ADMIN_TOKEN: DEV_ADMIN_TOKEN, FLASHSALE_DEV: "1" }).FLASHSALE_DEV).toBe(true);
  });

  it("fails fast naming the bad variable", () => {
    expect(() => loadConfig(catalogSchema, { PORT: "seventy" })).toThrow(ConfigError);
    expect(() => loadConfig(catalogSchema, { ADMIN_TOKEN: "short" })).toThrow(/ADMIN_TOKEN/);
  });

  it("splits the broker list", () => {
    expect(loadConfig(invalidatorSchema, { KAFKA_BROKERS: "a:1, b:2" }).KAFKA_BROKERS).toEqual(["a:1", "b:2"]);
  });
});
