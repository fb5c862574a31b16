import { encodeEntry, entityKeys } from "@flashsale/cache";
import { insertProduct, insertProducts, pgPool, redisClient, runId } from "@flashsale/testkit";
import type { Redis } from "ioredis";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkCacheConsistency, type ScanPosition } from "../src/cache-check.ts";
import { auditOrders } from "../src/order-audit.ts";

const SCHEMA = 3_000 + Math.floor(Math.random() * 1_000);
let pool: pg.Pool;
let redis: Redis;

beforeAll(() => {
  pool = pgPool();
  redis = redisClient();
});
afterAll(async () => {
  const keys = await redis.keys(`catalog:v${SCHEMA}:*`);
  if (keys.length) await redis.del(...keys);
  await Promise.all([pool.end(), redis.quit()]);
});

/** Writes a cache entry in the stored format (packages/cache entry.ts) with the product's checked fields. */
async function cache(id: number, version: number, priceCents: number) {
  const entry = {
    version,
    storedAt: Date.now(),
    expiresAt: Date.now() + 60_000,
    delta: 1,
    value: { id, version, listPriceCents: priceCents, sale: null },
  };
  await redis.set(entityKeys(SCHEMA, "product", id).value, encodeEntry(entry), "PX", 60_000);
}

describe("checkCacheConsistency", () => {
  it("finds a cached value the database no longer agrees with, and how long it has been wrong", async () => {
    const ok = await insertProduct(pool, { sku: `CC-${runId()}`, listPriceCents: 100, stock: 1 });
    const lost = await insertProduct(pool, { sku: `CC-${runId()}`, listPriceCents: 100, stock: 1 });
    // Versions come from one sequence (docs/architecture.md "Invalidation"): read them, not 1, 2, ...
    const version = async (id: number) => Number((await pool.query("SELECT version FROM products WHERE id = $1", [id])).rows[0].version);
    const lostVersion = await version(lost.id);
    await cache(ok.id, await version(ok.id), 100);
    await cache(lost.id, lostVersion, 100);
    await redis.set(`${entityKeys(SCHEMA, "product", 999_999_999).value}`, "not json", "PX", 60_000);
    // A write whose invalidation was lost: the cache keeps the version before it.
    await pool.query("UPDATE products SET list_price_cents = 150 WHERE id = $1", [lost.id]);

    // Young: still inside the window an invalidation normally needs, so not counted against the nines.
    const young = await checkCacheConsistency({ redis, pool, schemaVersion: SCHEMA, graceMs: 60_000 });
    expect(young.keysChecked).toBe(2);
    expect(young.inconsistent).toHaveLength(1);
    expect(young.inconsistent[0]).toMatchObject({
      productId: lost.id,
      cachedVersion: lostVersion,
      dbVersion: await version(lost.id),
      cachedPriceCents: 100,
      dbPriceCents: 150,
    });
    expect(young.inconsistent[0]?.ageMs).toBeLessThan(60_000);
    expect(young.staleBeyondGrace).toBe(0);

    const strict = await checkCacheConsistency({ redis, pool, schemaVersion: SCHEMA, graceMs: 0 });
    expect(strict.staleBeyondGrace).toBe(1);
    expect(strict.nines).toBeCloseTo(-Math.log10(0.5));

    await redis.del(entityKeys(SCHEMA, "product", lost.id).value); // what the invalidator would have done
    const after = await checkCacheConsistency({ redis, pool, schemaVersion: SCHEMA });
    expect(after.inconsistent).toEqual([]);
    expect(after.nines).toBe(Number.POSITIVE_INFINITY);
  });
});

describe("checkCacheConsistency sampling", () => {
  it("continues where the last check stopped, so checks of maxKeys each cover every cached key, not the same first ones", async () => {
    const schema = SCHEMA + 500;
    const rows = await insertProducts(
      pool,
      Array.from({ length: 12 }, () => ({ sku: `CS-${runId()}`, listPriceCents: 100, stock: 1 })),
    );
    // Every entry is stale (version 0, the rows have 1): each check must flag all it looks at.
    for (const r of rows) {
      const entry = {
        version: 0,
        storedAt: Date.now(),
        expiresAt: Date.now() + 60_000,
        delta: 1,
        value: { id: r.id, version: 0, listPriceCents: 1, sale: null },
      };
      await redis.set(entityKeys(schema, "product", r.id).value, encodeEntry(entry), "PX", 60_000);
    }
    const seen = new Set<number>();
    let from: ScanPosition | undefined;
    for (let i = 0; i < 3; i++) {
      const report = await checkCacheConsistency({ redis, pool, schemaVersion: schema, maxKeys: 4, graceMs: 0, ...(from ? { from } : {}) });
      expect(report.keysChecked).toBe(4);
      for (const x of report.inconsistent) seen.add(x.productId);
      from = report.next;
    }
    expect([...seen].sort()).toEqual(rows.map((r) => r.id).sort());
    // A full pass ends where it began: the next check starts again from the first keys.
    const all = await checkCacheConsistency({ redis, pool, schemaVersion: schema, graceMs: 0 });
    expect(all.keysChecked).toBe(12);
    expect(all.next).toEqual({ node: 0, cursor: "0", skip: 0 });
    await redis.del(...rows.map((r) => entityKeys(schema, "product", r.id).value));
  });
});

describe("auditOrders", () => {
  it("flags an order charged a price other than the effective price at its commit", async () => {
    const since = new Date();
    const p = await insertProduct(pool, { sku: `AU-${runId()}`, listPriceCents: 700, stock: 10 });
    // `bypass`: the line skips the commit-time price trigger (migration 20261127010000), as a write
    // with triggers off would (replica role, a restore): the audit is the check that sees it. The
    // trigger is disabled inside this one transaction only (others never see it off).
    const order = async (price: number, bypass = false) => {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        if (bypass) await client.query("ALTER TABLE order_items DISABLE TRIGGER order_items_price_at_commit");
        const { rows } = await client.query("INSERT INTO orders (cart_id, total_cents) VALUES (gen_random_uuid(), $1) RETURNING id", [
          price,
        ]);
        await client.query("INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) VALUES ($1, $2, 1, $3)", [
          rows[0].id,
          p.id,
          price,
        ]);
        if (bypass) await client.query("ALTER TABLE order_items ENABLE TRIGGER order_items_price_at_commit");
        await client.query("COMMIT");
        return rows[0].id as string;
      } catch (err) {
        await client.query("ROLLBACK");
        throw err;
      } finally {
        client.release();
      }
    };
    await order(700); // right
    await pool.query("UPDATE products SET list_price_cents = 800 WHERE id = $1", [p.id]);
    await expect(order(700)).rejects.toMatchObject({ code: "FS409" }); // the trigger refuses it at COMMIT
    const wrong = await order(700, true); // committed after the change: should have been 800
    await order(800); // right

    const report = await auditOrders(pool, { since, productIds: [p.id] });
    expect(report.orderLinesChecked).toBe(3);
    expect(report.wrongPrice).toEqual([expect.objectContaining({ orderId: wrong, chargedCents: 700, effectiveCentsAtCommit: 800 })]);
  });
});
