import { classifyDbError, createDb, type Db } from "@flashsale/db";
import { type SilenceableProxy, startSilenceableProxy, TEST_ENV } from "@flashsale/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * A Postgres that stops answering (SIGSTOPped, frozen, a connection silently dropped) cannot
 * enforce its own statement timeout: without a client-side bound an established pooled
 * connection waits for ever. The test's own proxy sits between the client and the test database.
 */
let proxy: SilenceableProxy;
let db: Db;

beforeAll(async () => {
  const target = new URL(TEST_ENV.databaseUrl);
  proxy = await startSilenceableProxy({ host: target.hostname, port: Number(target.port || 5432) });
  const url = new URL(TEST_ENV.databaseUrl);
  url.hostname = "127.0.0.1";
  url.port = String(proxy.port);
  db = createDb({ url: url.toString(), poolMax: 1, statementTimeoutMs: 500 });
});

afterAll(async () => {
  await db?.$disconnect().catch(() => {});
  await proxy?.close();
});

describe("a database that stops answering", () => {
  it("fails a query on an established connection within the statement timeout + 1 s, as an outage", async () => {
    expect(await db.$queryRaw`SELECT 1 AS one`).toEqual([{ one: 1 }]); // the pooled connection is established
    proxy.silent = true;
    const t0 = performance.now();
    const err = await db.$queryRaw`SELECT 1 AS one`.then(
      () => null,
      (e: unknown) => e,
    );
    const ms = performance.now() - t0;
    expect(err).not.toBeNull();
    expect(classifyDbError(err)).toBe("unavailable");
    expect(ms).toBeGreaterThanOrEqual(1_400); // the server's own 500 ms cannot fire: it never answers
    expect(ms).toBeLessThan(5_000);
    // The pool discarded the hung connection: with the server answering again, the next query works.
    proxy.silent = false;
    expect(await db.$queryRaw`SELECT 2 AS two`).toEqual([{ two: 2 }]);
  }, 20_000);
});
