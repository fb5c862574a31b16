import { insertProduct, pgPool, runId, type ServiceProcess, spawnService } from "@flashsale/testkit";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "./fixture.ts";

/**
 * DB_QUERY_METRICS=true: `http_request_db_queries{route}` counts the database queries of each
 * request. A real catalog process (main.ts wires the db client's query hook) on the real
 * Postgres and Redis: an admin price write is one statement, a cache hit none.
 */
const SCHEMA = String(30_000 + Math.floor(Math.random() * 10_000));
const auth = { authorization: "Bearer dev-admin-token-change-me", "content-type": "application/json" };
let catalog: ServiceProcess;
let pool: pg.Pool;

beforeAll(async () => {
  pool = pgPool();
  catalog = await spawnService("catalog", await freePort(), { DB_QUERY_METRICS: "true", CACHE_SCHEMA_VERSION: SCHEMA });
});
afterAll(async () => {
  await catalog?.stop();
  await pool?.end();
});

/** count and sum of http_request_db_queries for one route, from /metrics. */
async function queries(route: string): Promise<{ count: number; sum: number }> {
  const lines = (await (await fetch(`${catalog.url}/metrics`)).text()).split("\n");
  const value = (suffix: string) =>
    Number(
      lines
        .find((l) => l.startsWith(`http_request_db_queries_${suffix}{`) && l.includes(`route="${route}"`))
        ?.split(" ")
        .at(-1) ?? 0,
    );
  return { count: value("count"), sum: value("sum") };
}

describe("http_request_db_queries (DB_QUERY_METRICS=true)", () => {
  it("an admin price write costs exactly one query; a cached read none", async () => {
    const p = await insertProduct(pool, { sku: `DBQ-${runId()}`, listPriceCents: 100, stock: 1 });
    for (const price of [101, 102]) {
      const res = await fetch(`${catalog.url}/admin/products/${p.id}/price`, {
        method: "PUT",
        headers: auth,
        body: JSON.stringify({ listPriceCents: price }),
      });
      expect(res.status).toBe(200);
    }
    // UPDATE ... RETURNING in one statement.
    expect(await queries("PUT /admin/products/:id/price")).toEqual({ count: 2, sum: 2 });

    const get = () => fetch(`${catalog.url}/products/${p.id}`);
    expect((await get()).status).toBe(200); // fills the cache
    const before = await queries("GET /products/:id");
    const hit = await get();
    expect([hit.status, hit.headers.get("x-cache")?.startsWith("HIT")]).toEqual([200, true]);
    const after = await queries("GET /products/:id");
    expect(after).toEqual({ count: before.count + 1, sum: before.sum });
  });
});
