import { classifyDbError, createDb, type Db, sqlState } from "@flashsale/db";
import { pgPool, TEST_ENV, waitFor } from "@flashsale/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * Real errors from a real Postgres through Prisma 7's driver adapter: the shapes the
 * classifier relies on (the SQLSTATE in `originalCode`, socket errors as a `kind`).
 */
let db: Db;
let unreachable: Db;

beforeAll(() => {
  db = createDb({ url: TEST_ENV.databaseUrl, poolMax: 2 });
  // Port 1 on loopback: nothing listens, the connection is refused, like a stopped Postgres.
  const url = new URL(TEST_ENV.databaseUrl);
  url.port = "1";
  unreachable = createDb({ url: url.toString(), poolMax: 1, connectTimeoutMs: 1_000 });
});
afterAll(async () => {
  await Promise.all([db.$disconnect(), unreachable.$disconnect()]);
});

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected the query to fail");
}

describe("classifyDbError on real Postgres errors", () => {
  it("a value Postgres refuses (class 22) is the client's input, SQLSTATE read from originalCode", async () => {
    const err = await failure(db.$queryRaw`SELECT ${"urn:uuid:00000000-0000-4000-8000-000000000000"}::uuid`);
    expect(sqlState(err)).toBe("22P02");
    expect(classifyDbError(err)).toBe("invalid_input");
    const range = await failure(db.$queryRaw`SELECT ${"99999999999"}::int`);
    expect(classifyDbError(range)).toBe("invalid_input");
  });

  it("a unique or foreign-key violation is a conflict", async () => {
    const sku = `ERR-${Date.now()}-${Math.random()}`;
    await db.$executeRaw`INSERT INTO products (sku, name, list_price_cents) VALUES (${sku}, 'x', 1)`;
    const dup = await failure(db.$executeRaw`INSERT INTO products (sku, name, list_price_cents) VALUES (${sku}, 'x', 1)`);
    expect(sqlState(dup)).toBe("23505");
    expect(classifyDbError(dup)).toBe("conflict");
    const fk = await failure(db.$executeRaw`INSERT INTO inventory (product_id, available) VALUES (-42, 1)`);
    expect(sqlState(fk)).toBe("23503");
    expect(classifyDbError(fk)).toBe("conflict");
    expect(classifyDbError(await failure(db.$queryRaw`SELECT 1/0`))).toBe("invalid_input"); // 22012
  });

  it("an unreachable database is an outage", async () => {
    const err = await failure(unreachable.$queryRaw`SELECT 1`);
    expect(classifyDbError(err)).toBe("unavailable");
  });

  it("waiting past the pool's connect timeout is saturation (busy), not an outage and not a bug", async () => {
    const tight = createDb({ url: TEST_ENV.databaseUrl, poolMax: 1, connectTimeoutMs: 1_000 });
    try {
      // The only pooled connection is busy for 3 s (a Prisma query runs once awaited or then-ed).
      const tag = `pool-holder-${Date.now()}`;
      const holder = tight.$queryRawUnsafe(`SELECT pg_sleep(3)::text, '${tag}'`).then(() => {});
      const pool = pgPool(TEST_ENV.databaseUrl, 1);
      await waitFor(
        async () => ((await pool.query("SELECT 1 FROM pg_stat_activity WHERE query LIKE $1", [`%'${tag}'%`])).rowCount ? true : undefined),
        { timeoutMs: 5_000, intervalMs: 10, what: "the holder's query to run" },
      );
      await pool.end();
      const err = await failure(tight.$queryRaw`SELECT 1`);
      await holder;
      expect(classifyDbError(err), String((err as Error).message)).toBe("busy");
    } finally {
      await tight.$disconnect();
    }
  });

  it("a real deadlock is retryable (placeOrder retries it; before, its SQLSTATE was looked for in the wrong field)", async () => {
    const [a, b] = [`DL-${Date.now()}-a`, `DL-${Date.now()}-b`];
    const rows = await db.$queryRaw<{ id: bigint }[]>`
      INSERT INTO products (sku, name, list_price_cents) VALUES (${a}, 'x', 1), (${b}, 'x', 1) RETURNING id`;
    const [first, second] = rows.map((r) => r.id) as [bigint, bigint];
    const lockedBoth = { a: false, b: false };
    // Two transactions lock the two rows in opposite orders; each waits until the other holds its first row.
    const tx = (one: bigint, two: bigint, me: "a" | "b", other: "a" | "b") =>
      db.$transaction(
        async (t) => {
          await t.$executeRaw`UPDATE products SET name = 'y' WHERE id = ${one}`;
          lockedBoth[me] = true;
          await waitFor(async () => (lockedBoth[other] ? true : undefined), { timeoutMs: 5_000, intervalMs: 5, what: "the other lock" });
          await t.$executeRaw`UPDATE products SET name = 'z' WHERE id = ${two}`;
        },
        { timeout: 10_000 },
      );
    const results = await Promise.allSettled([tx(first, second, "a", "b"), tx(second, first, "b", "a")]);
    const failed = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
    expect(failed).toHaveLength(1);
    expect(sqlState(failed[0]?.reason)).toBe("40P01");
    expect(classifyDbError(failed[0]?.reason)).toBe("retryable");
  });

  it("a bug or a non-database error is not classified (it stays a 500)", async () => {
    const err = await failure(db.$queryRaw`SELECT no_such_column FROM products`);
    expect(classifyDbError(err)).toBeNull();
    // A client hanging up mid-body surfaces as a bare ECONNRESET: not a database error.
    expect(classifyDbError(Object.assign(new Error("aborted"), { code: "ECONNRESET" }))).toBeNull();
  });
});
