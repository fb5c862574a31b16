/**
 * Issue 12 items 1-3 and issue 10 item 1, on a real pipeline of our own (test/private-pipeline.ts:
 * a database created from the migrations, its own Debezium connector, slot and topics, a private
 * redis-server, an in-process invalidator). Each test reproduces a way a stale price survived and
 * checks that the cached value is now evicted and older fills are fenced. Destructive statements
 * (TRUNCATE, a table rewrite) run only on that private database.
 */
import { entityKeys, FRESHNESS_KEYS, readWatermarkAgeMs, redisNowMs } from "@flashsale/cache";
import { waitFor } from "@flashsale/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DELETE_FENCE_VERSION } from "../services/invalidator/src/change-event.ts";
import { type PrivatePipeline, startPrivatePipeline } from "./private-pipeline.ts";

const SCHEMA = 300_000 + Math.floor(Math.random() * 100_000);
let pp: PrivatePipeline;

beforeAll(async () => {
  pp = await startPrivatePipeline({ schemaVersion: SCHEMA, redisPort: 18_000 + Math.floor(Math.random() * 900) });
  // The connector streams from its slot's creation on: wait for a first change to come through.
  const probe = await insert("PROBE", 100);
  await pp.pool.query("UPDATE products SET list_price_cents = 101 WHERE id = $1", [probe.id]);
  await waitFor(async () => ((await fence(probe.id)) !== null ? true : undefined), {
    timeoutMs: 60_000,
    what: "the private pipeline streaming",
  });
}, 120_000);

afterAll(async () => {
  await pp?.close();
}, 60_000);

const keys = (id: number) => entityKeys(SCHEMA, "product", id);
const fence = async (id: number) => {
  const f = await pp.redis.get(keys(id).fence);
  return f === null ? null : Number(f);
};

async function insert(sku: string, priceCents: number): Promise<{ id: number; version: number }> {
  const { rows } = await pp.pool.query<{ id: string; version: string }>(
    "INSERT INTO products (sku, name, list_price_cents) VALUES ($1, $1, $2) RETURNING id, version",
    [`${sku}-${Math.random().toString(36).slice(2, 8)}`, priceCents],
  );
  return { id: Number(rows[0]?.id), version: Number(rows[0]?.version) };
}

async function versionOf(id: number): Promise<number> {
  const { rows } = await pp.pool.query<{ version: string }>("SELECT version FROM products WHERE id = $1", [id]);
  return Number(rows[0]?.version);
}

/** What a catalog fill leaves in Redis (the INVALIDATE script reads only `version`). */
async function cache(id: number, version: number): Promise<void> {
  await pp.redis.set(keys(id).value, JSON.stringify({ version, storedAt: Date.now(), value: { id, version } }), "PX", 600_000);
}

const evicted = (id: number, what: string) =>
  waitFor(async () => ((await pp.redis.exists(keys(id).value)) === 0 ? true : undefined), { timeoutMs: 10_000, what });

describe("pipeline holes (issue 12)", () => {
  it("item 2: a price change under session_replication_role = replica moves the version, is evicted, and is in the price history", async () => {
    const p = await insert("REPLICA", 1_000);
    await cache(p.id, p.version);
    const client = await pp.pool.connect();
    try {
      await client.query("SET session_replication_role = replica");
      await client.query("UPDATE products SET list_price_cents = 111 WHERE id = $1", [p.id]);
      await client.query("RESET session_replication_role");
    } finally {
      client.release();
    }
    const v = await versionOf(p.id);
    expect(v).toBeGreaterThan(p.version);
    await evicted(p.id, "the replica-role update evicted");
    expect(await fence(p.id)).toBe(v);
    const history = await pp.pool.query("SELECT list_price_cents FROM product_price_history WHERE product_id = $1 AND version = $2", [
      p.id,
      v,
    ]);
    expect(history.rows).toEqual([{ list_price_cents: 111 }]);
  });

  it("item 3: DELETE + re-INSERT of the same id gets a higher version, and the old cached value is evicted", async () => {
    const p = await insert("REINSERT", 500);
    await pp.pool.query("DELETE FROM products WHERE id = $1", [p.id]);
    await pp.pool.query("INSERT INTO products (id, sku, name, list_price_cents) VALUES ($1, $2, $2, 600)", [p.id, `REINSERT2-${p.id}`]);
    const v = await versionOf(p.id);
    expect(v).toBeGreaterThan(p.version);
    // A value cached from the old row (older version) must not survive the new row's event.
    await cache(p.id, p.version);
    await pp.pool.query("UPDATE products SET name = name WHERE id = $1", [p.id]);
    await evicted(p.id, "the old row's cached value");
  });

  it("item 9: a re-inserted id's version replaces its delete fence, so the new row fills at once; a delete alone keeps +inf", async () => {
    const p = await insert("REFILL", 500);
    await pp.pool.query("DELETE FROM products WHERE id = $1", [p.id]);
    await waitFor(async () => ((await fence(p.id)) === DELETE_FENCE_VERSION ? true : undefined), {
      timeoutMs: 10_000,
      what: "the delete fence",
    });
    await pp.pool.query("INSERT INTO products (id, sku, name, list_price_cents) VALUES ($1, $2, $2, 600)", [p.id, `REFILL2-${p.id}`]);
    const v = await versionOf(p.id);
    await waitFor(async () => ((await fence(p.id)) === v ? true : undefined), { timeoutMs: 10_000, what: "the re-insert's fence" });
    // A fill that read the row before the delete (its old version) is still refused: the fence is above it.
    expect(v).toBeGreaterThan(p.version);
  });

  it("item 3: a catalog reload (TRUNCATE + INSERT of the same ids in one transaction) evicts and fences every old value", async () => {
    const kept = await insert("RELOAD-KEPT", 700);
    const gone = await insert("RELOAD-GONE", 800);
    await cache(kept.id, kept.version);
    await cache(gone.id, gone.version);
    const client = await pp.pool.connect();
    try {
      await client.query("BEGIN");
      await client.query("TRUNCATE products CASCADE");
      await client.query("INSERT INTO products (id, sku, name, list_price_cents) VALUES ($1, $2, $2, 701)", [
        kept.id,
        `RELOADED-${kept.id}`,
      ]);
      await client.query("COMMIT");
    } finally {
      client.release();
    }
    const { rows } = await pp.pool.query<{ version_floor: string }>("SELECT version_floor FROM cache_epochs ORDER BY id DESC LIMIT 1");
    const floor = Number(rows[0]?.version_floor);
    expect(floor).toBeGreaterThan(Math.max(kept.version, gone.version));
    expect(await versionOf(kept.id)).toBeGreaterThan(floor);
    await evicted(kept.id, "the reloaded product's old value");
    await evicted(gone.id, "the truncated product's value");
    // A fill that read either row before the reload is refused: the fences are at or above the floor.
    await waitFor(async () => (((await fence(gone.id)) ?? 0) >= floor ? true : undefined), { timeoutMs: 10_000, what: "gone's fence" });
    expect(await fence(kept.id)).toBeGreaterThan(kept.version);
  });

  it("item 3: a table-rewriting ALTER gives every row a new version (evicted, fenced, in the price history); dropping the guard's triggers is refused", async () => {
    const p = await insert("rewrite", 1_000);
    await cache(p.id, p.version);
    // (The price columns are pinned by a trigger's column list; a rewrite of the name is the same hole: no row events.)
    await pp.pool.query("ALTER TABLE products ALTER COLUMN name TYPE text USING upper(name)");
    const v = await versionOf(p.id);
    expect(v).toBeGreaterThan(p.version);
    await evicted(p.id, "the rewritten product's old value");
    await waitFor(async () => ((await fence(p.id)) === v ? true : undefined), { timeoutMs: 10_000, what: "the fence at the new version" });
    const history = await pp.pool.query("SELECT list_price_cents FROM product_price_history WHERE product_id = $1 AND version = $2", [
      p.id,
      v,
    ]);
    expect(history.rows).toEqual([{ list_price_cents: 1_000 }]);
    expect((await pp.pool.query("SELECT name FROM products WHERE id = $1", [p.id])).rows[0].name).toMatch(/^REWRITE-/);
    await expect(pp.pool.query("ALTER TABLE products DISABLE TRIGGER products_bump_version")).rejects.toThrow(/ENABLE ALWAYS/);
    await expect(pp.pool.query("ALTER TABLE products ENABLE TRIGGER products_record_price")).rejects.toThrow(/ENABLE ALWAYS/);
  });

  it("item 1: a wide row's change is evicted with its real version, not dead-lettered (only the needed columns are streamed)", async () => {
    const p = await insert("WIDE", 1_000);
    await cache(p.id, p.version);
    const client = await pp.pool.connect();
    try {
      // lz4 keeps the big value inline in the row, the case that made every later change poison too.
      await client.query("SET default_toast_compression = 'lz4'");
      await client.query("UPDATE products SET list_price_cents = 222, description = repeat('Great product! ', 20000) WHERE id = $1", [
        p.id,
      ]);
    } finally {
      client.release();
    }
    const v1 = await versionOf(p.id);
    await evicted(p.id, "the wide row's eviction");
    expect(await fence(p.id)).toBe(v1); // the event was read (a dead-lettered one fences at DELETE_FENCE_VERSION)
    await cache(p.id, v1);
    await pp.pool.query("UPDATE products SET list_price_cents = 333 WHERE id = $1", [p.id]);
    const v2 = await versionOf(p.id);
    await evicted(p.id, "the next price change of the wide row");
    expect(await fence(p.id)).toBe(v2);
    expect(v2).not.toBe(DELETE_FENCE_VERSION);
    const dead = (await pp.metrics.getSingleMetric("invalidator_dead_lettered_total")?.get())?.values ?? [];
    expect(dead.reduce((s, x) => s + x.value, 0)).toBe(0);
  });
});

describe("freshness watermark (issue 10 item 1)", () => {
  it("is published, stays young while the pipeline runs, and never passes a change that is not yet evicted", async () => {
    await waitFor(async () => ((await readWatermarkAgeMs(pp.redis)) !== null ? true : undefined), {
      timeoutMs: 20_000,
      what: "a first watermark",
    });
    const ages: number[] = [];
    for (let i = 0; i < 10; i++) {
      const p = await insert("WM", 100);
      await cache(p.id, p.version);
      await pp.pool.query("UPDATE products SET list_price_cents = 150 WHERE id = $1", [p.id]);
      const committedBy = await redisNowMs(pp.redis); // the commit happened before this instant
      // From the moment the watermark passes the commit, the eviction must be visible.
      await waitFor(async () => (Number(await pp.redis.get(FRESHNESS_KEYS.watermark)) >= committedBy ? true : undefined), {
        timeoutMs: 10_000,
        intervalMs: 5,
        what: "the watermark passing the commit",
      });
      expect(await pp.redis.exists(keys(p.id).value)).toBe(0);
      ages.push((await readWatermarkAgeMs(pp.redis)) ?? Number.POSITIVE_INFINITY);
    }
    expect(Math.max(...ages)).toBeLessThan(1_500);
  });
});
