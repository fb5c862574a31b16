import { describe, expect, it } from "vitest";
import { isDbUnavailable } from "./errors.ts";

// Shapes as Prisma 7's driver adapter produces them (real ones: packages/db/test/errors.test.ts).
const adapterError = (cause: Record<string, unknown>) => ({
  name: "PrismaClientKnownRequestError",
  code: "P2010",
  meta: { driverAdapterError: { name: "DriverAdapterError", cause } },
});

describe("isDbUnavailable", () => {
  it("finds the SQLSTATE where Prisma 7 puts it (meta.driverAdapterError.cause.originalCode)", () => {
    expect(isDbUnavailable(adapterError({ originalCode: "57P03", kind: "postgres" }))).toBe(true);
    expect(isDbUnavailable(adapterError({ kind: "DatabaseNotReachable", host: "127.0.0.1", port: 1 }))).toBe(true);
  });

  it("recognises Prisma connection codes", () => {
    expect(isDbUnavailable({ name: "PrismaClientInitializationError", code: "P1001" })).toBe(true);
  });

  it("does not mistake other failures for an outage", () => {
    expect(isDbUnavailable(adapterError({ originalCode: "23505", kind: "UniqueConstraintViolation" }))).toBe(false);
    expect(isDbUnavailable(adapterError({ originalCode: "22P02", kind: "InvalidInputValue" }))).toBe(false);
    // A client hanging up mid-body: Node's ECONNRESET "aborted", no database involved.
    expect(isDbUnavailable(Object.assign(new Error("aborted"), { code: "ECONNRESET" }))).toBe(false);
    expect(isDbUnavailable(new Error("boom"))).toBe(false);
  });
});
