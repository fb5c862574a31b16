import { describe, expect, it } from "vitest";
import { ConfigError, catalogSchema, checkoutSchema, DEV_ADMIN_TOKEN, invalidatorSchema, loadConfig } from "./index.ts";

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

  it("treats an empty variable as unset (PORT= is the default port, not a random one)", () => {
    expect(loadConfig(catalogSchema, { FLASHSALE_DEV: "1", PORT: "" }).PORT).toBe(3001);
  });

  it("refuses timeouts Node cannot hold and a headers timeout longer than the request timeout", () => {
    expect(() => loadConfig(checkoutSchema, { HTTP_REQUEST_TIMEOUT_MS: "3000000000" })).toThrow(/HTTP_REQUEST_TIMEOUT_MS: at most/);
    expect(() => loadConfig(checkoutSchema, { HTTP_HEADERS_TIMEOUT_MS: "20000", HTTP_REQUEST_TIMEOUT_MS: "10000" })).toThrow(
      /HTTP_HEADERS_TIMEOUT_MS: must not exceed/,
    );
  });

  it("refuses a TRUSTED_PROXIES entry that is not an address, a CIDR or a named range, naming it", () => {
    expect(() => loadConfig(invalidatorSchema, { TRUSTED_PROXIES: "not-an-ip" })).toThrow(/TRUSTED_PROXIES/);
    expect(() => loadConfig(invalidatorSchema, { TRUSTED_PROXIES: "10.0.0.0/33" })).toThrow(/TRUSTED_PROXIES/);
    expect(loadConfig(invalidatorSchema, { TRUSTED_PROXIES: "10.0.0.0/8, ::1, loopback" }).TRUSTED_PROXIES).toEqual([
      "10.0.0.0/8",
      "::1",
      "loopback",
    ]);
  });
});
