import { describe, expect, it } from "vitest";
import { isDbUnavailable } from "./errors.ts";

describe("isDbUnavailable", () => {
  it("finds the SQLSTATE where Prisma 7 puts it (meta.driverAdapterError.cause.code)", () => {
    const prismaErr = {
      code: "P2010",
      meta: { driverAdapterError: { name: "DriverAdapterError", cause: { code: "57P03", kind: "postgres" } } },
    };
    expect(isDbUnavailable(prismaErr)).toBe(true);
  });

  it("recognises refused connections and Prisma connection codes", () => {
    expect(isDbUnavailable({ cause: { code: "ECONNREFUSED" } })).toBe(true);
    expect(isDbUnavailable({ code: "P1001" })).toBe(true);
  });

  it("does not mistake other database errors for an outage", () => {
    expect(isDbUnavailable({ code: "P2010", meta: { driverAdapterError: { cause: { code: "23505" } } } })).toBe(false);
    expect(isDbUnavailable(new Error("boom"))).toBe(false);
  });
});
