/**
 * The watermark speaks only for the schema versions the invalidator covers (docs/architecture.md
 * "Freshness" 7). The review's repro on the real processes: a catalog on version V leaves V keys in
 * Redis and goes away; V's announcement lapses, so the invalidator stops evicting V; a raw-SQL price
 * change (evicted for the invalidator's own version N only); then a catalog on V starts again while
 * the invalidator runs. Before the fix it trusted the fresh watermark at once and served the old
 * price from its V key as a HIT until the invalidator's next refresh and retire evicted it. A private
 * Redis (the watermark, the announcements and the coverage are this file's alone) on the test stack's
 * pipeline.
 */
import { insertProduct, pgPool, runId, waitFor } from "@flashsale/testkit";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cached, type OwnedProcess, psql, servedWithin, startRedis, startService } from "./private-stack.ts";

const N = 500_000 + Math.floor(Math.random() * 400_000);
const V = N + 1;
const run = runId();
let pool: pg.Pool;
let redis: OwnedProcess;
let invalidator: OwnedProcess;
let catalogN: OwnedProcess;
const owned: OwnedProcess[] = [];

beforeAll(async () => {
  pool = pgPool();
  redis = await startRedis();
  invalidator = await startService("invalidator", {
    REDIS_URL: redis.url,
    CACHE_SCHEMA_VERSION: String(N),
    KAFKA_GROUP_ID: `flashsale-test-coverage-${run}`,
    KAFKA_NEW_GROUP_START: "latest",
  });
  catalogN = await startService("catalog", { REDIS_URL: redis.url, CACHE_SCHEMA_VERSION: String(N) });
  // The pipeline is live once catalog N serves a raw-SQL change to a cached product.
  const probe = await insertProduct(pool, { sku: `COVER-${run}-probe`, listPriceCents: 100, stock: 1 });
  let price = 100;
  await waitFor(
    async () => {
      if (
        !(await cached(catalogN.url, probe.id).then(
          () => true,
          () => false,
        ))
      )
        return undefined;
      price++;
      await psql(`UPDATE products SET list_price_cents = ${price} WHERE id = ${probe.id}`);
      return servedWithin(catalogN.url, probe.id, price, performance.now(), 5_000).catch(() => undefined);
    },
    { timeoutMs: 90_000, what: "the pipeline to serve a first change" },
  );
}, 180_000);

afterAll(async () => {
  for (const p of [invalidator, catalogN, ...owned]) await p?.stop();
  await redis?.stop();
  await pool?.end();
});

describe("a catalog on a schema version the invalidator does not cover yet", () => {
  it("never serves a price changed while its version was not evicted, also right after it starts", async () => {
    const p = await insertProduct(pool, { sku: `COVER-${run}`, listPriceCents: 7_000, stock: 1 });
    // An earlier catalog on V fills its V key, then goes away.
    const earlier = await startService("catalog", { REDIS_URL: redis.url, CACHE_SCHEMA_VERSION: String(V) });
    owned.push(earlier);
    await cached(earlier.url, p.id);
    await earlier.stop();
    // Its announcement (5 s TTL) lapses and the invalidator drops V at its next refresh (1 s).
    await new Promise((r) => setTimeout(r, 7_000));
    const t0 = performance.now();
    await psql(`UPDATE products SET list_price_cents = 7001 WHERE id = ${p.id}`);
    await servedWithin(catalogN.url, p.id, 7_001, t0, 5_000); // handled (for N only)
    const later = await startService("catalog", { REDIS_URL: redis.url, CACHE_SCHEMA_VERSION: String(V) });
    owned.push(later);
    const answers: string[] = [];
    const until = performance.now() + 4_000;
    while (performance.now() < until) {
      const res = await fetch(`${later.url}/products/${p.id}`, { signal: AbortSignal.timeout(2_000) });
      const body = (await res.json()) as { priceCents: number };
      answers.push(`${body.priceCents} ${res.headers.get("x-cache")}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    console.log(`schema coverage: ${answers.length} answers after start, first ${answers[0]}, last ${answers.at(-1)}`);
    expect(answers.filter((a) => !a.startsWith("7001 "))).toEqual([]);
  }, 90_000);
});
