/**
 * Issue 13 item 3 through the real pipeline: a missing id is cached as absent (one Postgres read for
 * 200 GETs), and an INSERT by raw SQL reaches the absent marker through CDC (Debezium -> Kafka -> the
 * invalidator's INVALIDATE, which deletes a marker like any older entry): the product is served
 * within 2 s. The test stack's connector and topics feed an invalidator this test spawns; it and the
 * catalog share a private Redis (test/private-stack.ts).
 */
import { insertProduct, pgPool, runId, waitFor } from "@flashsale/testkit";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cached, type OwnedProcess, psql, servedWithin, startRedis, startService } from "./private-stack.ts";

const run = runId();
let pool: pg.Pool;
let redis: OwnedProcess;
let invalidator: OwnedProcess;
let catalog: OwnedProcess;

beforeAll(async () => {
  pool = pgPool();
  redis = await startRedis();
  invalidator = await startService("invalidator", {
    REDIS_URL: redis.url,
    KAFKA_GROUP_ID: `flashsale-test-negative-${run}`,
    KAFKA_NEW_GROUP_START: "latest",
  });
  catalog = await startService("catalog", { REDIS_URL: redis.url, CACHE_NEGATIVE_TTL_MS: "30000" });
  // The pipeline is live once a raw-SQL change to a cached product is served.
  const probe = await insertProduct(pool, { sku: `NEGE2E-${run}-probe`, listPriceCents: 100, stock: 1 });
  let price = 100;
  await waitFor(
    async () => {
      await cached(catalog.url, probe.id);
      price++;
      await psql(`UPDATE products SET list_price_cents = ${price} WHERE id = ${probe.id}`);
      return servedWithin(catalog.url, probe.id, price, performance.now(), 5_000).catch(() => undefined);
    },
    { timeoutMs: 90_000, what: "the pipeline to serve a first change" },
  );
}, 180_000);

/** The catalog's own count of cache events (its Postgres product reads are `miss`, `bypass` and `lease_wait_timeout`). */
async function events(): Promise<Record<string, number>> {
  const text = await (await fetch(`${catalog.url}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^catalog_cache_events_total\{event="([a-z_0-9]+)"[^}]*\} ([0-9.e+]+)$/gm))
    out[m[1] as string] = Number(m[2]);
  return out;
}

afterAll(async () => {
  await invalidator?.stop();
  await catalog?.stop();
  await redis?.stop();
  await pool?.end();
});

describe("negative caching through CDC", () => {
  it("200 GETs of a missing id cost at most a few Postgres reads; a raw-SQL INSERT of it is served within 2 s", async () => {
    // An id nobody uses: taken from the sequence, never inserted until the end of the test.
    const { rows } = await pool.query<{ id: string }>("SELECT nextval(pg_get_serial_sequence('products', 'id')) AS id");
    const id = Number(rows[0]?.id);
    const before = await events();
    const statuses = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const res = await fetch(`${catalog.url}/products/${id}`, { signal: AbortSignal.timeout(5_000) });
      await res.arrayBuffer();
      statuses.add(res.status);
    }
    const after = await events();
    const delta = (e: string) => (after[e] ?? 0) - (before[e] ?? 0);
    // The shared test database's pg_stat_statements also counts other tests' reads: the catalog's own events are exact.
    const reads = delta("miss") + delta("bypass") + delta("lease_wait_timeout");
    console.log(`200 GETs of missing product ${id}: ${reads} Postgres product read(s), ${delta("negative_hit")} absent-marker hits`);
    expect(delta("negative_hit")).toBeGreaterThanOrEqual(197);
    expect([...statuses]).toEqual([404]);
    expect(reads).toBeLessThanOrEqual(3);

    const t0 = performance.now();
    await psql(`INSERT INTO products (id, sku, name, list_price_cents) VALUES (${id}, 'NEGE2E-${run}', 'NEGE2E-${run}', 4242)`);
    const took = await servedWithin(catalog.url, id, 4242, t0, 2_000);
    console.log(`raw-SQL INSERT of a cached-absent id served after ${Math.round(took)} ms`);
    expect(took).toBeLessThanOrEqual(2_000);
  }, 60_000);
});
