/**
 * Cluster mode: the same protocol on a real 3-master Redis Cluster (private to this
 * test). Every key family is hash-tagged, so each Lua script touches one slot; the
 * L1 tracking channel needs one subscription per master.
 */
import { spawnSync } from "node:child_process";
import { checkCacheConsistency } from "@flashsale/consistency";
import { insertProducts, PrivateRedisCluster, pgPool, runId, spawnService, testServiceEnv, waitFor } from "@flashsale/testkit";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CacheEvent, VersionedCache } from "../src/cache.ts";
import { invalidateEntity, sweepFences } from "../src/invalidate.ts";
import { entityKeys, keyPrefix, slotKeys } from "../src/keys.ts";
import { L1Invalidations } from "../src/l1-invalidations.ts";
import { createRedisClient, masterNodes, type RedisClient, redisReady } from "../src/redis-client.ts";
import { StockGate } from "../src/stock-gate.ts";
import { type Row, testCache } from "./cache-factory.ts";

const SCHEMA = 1;
const cluster = new PrivateRedisCluster(18_100 + Math.floor(Math.random() * 300) * 3);
const clients: RedisClient[] = [];
const closers: Array<() => Promise<unknown>> = [];
let pool: pg.Pool;

async function client(): Promise<RedisClient> {
  const c = createRedisClient({ url: "", clusterNodes: cluster.nodes, commandTimeoutMs: 2_000, failFast: false });
  c.on("error", () => {});
  clients.push(c);
  await redisReady(c);
  return c;
}

function cacheOn(redis: RedisClient, extra: { events?: CacheEvent[]; invalidations?: L1Invalidations } = {}): VersionedCache<Row> {
  return testCache(redis, SCHEMA, {
    ...(extra.events ? { events: extra.events } : {}),
    ...(extra.invalidations ? { l1: { invalidations: extra.invalidations, ttlMs: 60_000 } } : {}),
  });
}

beforeAll(async () => {
  pool = pgPool();
  await cluster.start();
});
afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
  for (const c of clients) c.disconnect();
  await cluster.stop();
  await pool.end();
});

describe("Redis Cluster mode", () => {
  it("spreads entities over the masters and keeps each entity's value, lease and fence in one slot", async () => {
    const redis = await client();
    const cache = cacheOn(redis);
    for (let id = 1; id <= 30; id++) await cache.get(id, async () => ({ id, version: 1, priceCents: id }));
    const owners = new Set<string>();
    for (let id = 1; id <= 30; id++) {
      const k = entityKeys(SCHEMA, "product", id);
      const s = slotKeys(k.value);
      const slots = await Promise.all(
        [k.value, k.lease, k.fence, s.incarnation, s.fences].map((key) => (redis as import("ioredis").Cluster).cluster("KEYSLOT", key)),
      );
      expect(new Set(slots).size).toBe(1);
      // redis-cli --cluster create splits the 16,384 slots evenly over the 3 masters.
      const slot = Number(slots[0]);
      owners.add(slot <= 5460 ? "a" : slot <= 10922 ? "b" : "c");
    }
    expect(owners.size).toBeGreaterThan(1);
    expect((await cache.get(7, async () => null)).source).toBe("HIT");
  });

  it("sweeps fences whose time is up on every master (each slot's index, fence keys in the same slot)", async () => {
    const redis = await client();
    for (let id = 200; id < 230; id++)
      await invalidateEntity(redis, { schemaVersion: SCHEMA, entity: "product", id, version: 2, fenceTtlMs: 1 });
    await new Promise((r) => setTimeout(r, 5));
    expect(await sweepFences(redis)).toBe(30);
    for (let id = 200; id < 230; id++) expect(await redis.get(entityKeys(SCHEMA, "product", id).fence)).toBeNull();
  });

  it("refuses a stale fill after an invalidation, across the cluster", async () => {
    const redis = await client();
    const events: CacheEvent[] = [];
    const cache = cacheOn(redis, { events });
    let release!: (r: Row) => void;
    const reading = cache.get(101, () => new Promise<Row>((r) => (release = r)));
    await waitFor(async () => ((await redis.exists(entityKeys(SCHEMA, "product", 101).lease)) ? true : undefined), {
      timeoutMs: 3_000,
      what: "lease",
    });
    await invalidateEntity(redis, { schemaVersion: SCHEMA, entity: "product", id: 101, version: 6, fenceTtlMs: 60_000 });
    release({ id: 101, version: 5, priceCents: 500 });
    await reading;
    expect(events).toContain("fill_refused");
    expect(await redis.exists(entityKeys(SCHEMA, "product", 101).value)).toBe(0);
  });

  it("keeps L1s coherent with one tracking subscription per master", async () => {
    const processes = await Promise.all(
      [1, 2].map(async () => {
        const redis = await client();
        const invalidations = new L1Invalidations(redis, keyPrefix(SCHEMA));
        await invalidations.start();
        closers.push(() => invalidations.stop());
        await waitFor(async () => (invalidations.isUp ? true : undefined), { timeoutMs: 10_000, what: "tracking on every master" });
        return cacheOn(redis, { invalidations });
      }),
    );
    // Each tracking connection is checked end to end by a canary key of its own master (2 processes x 3 masters).
    const canaryMasters = await Promise.all(
      masterNodes(await client()).map(async (node) => (await node.keys(`${keyPrefix(SCHEMA)}canary:*`)).length),
    );
    expect(canaryMasters).toEqual([2, 2, 2]);
    const ids = Array.from({ length: 12 }, (_, i) => 200 + i); // spread over the masters
    let version = 1;
    for (const cache of processes) {
      for (const id of ids) {
        await waitFor(
          async () => ((await cache.get(id, async () => ({ id, version, priceCents: 1 }))).source === "HIT-L1" ? true : undefined),
          {
            timeoutMs: 5_000,
            what: `L1 entry ${id}`,
          },
        );
      }
    }
    version = 2;
    const writer = await client();
    for (const id of ids) await invalidateEntity(writer, { schemaVersion: SCHEMA, entity: "product", id, version: 2, fenceTtlMs: 60_000 });
    for (const cache of processes) {
      for (const id of ids) {
        await waitFor(
          async () => ((await cache.get(id, async () => ({ id, version, priceCents: 1 }))).value?.version === 2 ? true : undefined),
          {
            timeoutMs: 1_000,
            intervalMs: 1,
            what: `L1 of ${id} to drop version 1`,
          },
        );
      }
    }
  });

  it("runs the stock gate and the consistency checker on the cluster", async () => {
    const redis = await client();
    const gate = new StockGate(redis);
    const results = await Promise.all(Array.from({ length: 5 }, (_, i) => gate.reserve(9_001, 1, `t${i}`, async () => 3)));
    expect(results.filter((r) => r === "reserved")).toHaveLength(3);

    const products = await insertProducts(
      pool,
      Array.from({ length: 10 }, (_, i) => ({ sku: `CL-${runId()}-${i}`, listPriceCents: 100, stock: 1 })),
    );
    const cache = cacheOn(redis);
    for (const p of products)
      await cache.get(p.id, async () => ({ id: p.id, version: 1, priceCents: 100, listPriceCents: 100, sale: null }));
    await pool.query("UPDATE products SET list_price_cents = 150 WHERE id = $1", [products[0]?.id]);
    const report = await checkCacheConsistency({ redis, pool, schemaVersion: SCHEMA, graceMs: 0 });
    expect(report.keysChecked).toBeGreaterThanOrEqual(products.length);
    expect(report.inconsistent.map((i) => i.productId)).toContain(products[0]?.id);

    // The command an operator runs (pnpm consistency) with the services' REDIS_CLUSTER_NODES judges
    // every master too, not only the node REDIS_URL names (here: nothing listens there).
    const since = new Date().toISOString();
    const cli = spawnSync(
      process.execPath,
      ["--import", "tsx", "packages/consistency/src/cli.ts", "--json", "--grace-ms", "0", "--since", since],
      {
        cwd: new URL("../../../", import.meta.url).pathname,
        env: {
          ...process.env,
          ...testServiceEnv(),
          CACHE_SCHEMA_VERSION: String(SCHEMA),
          REDIS_URL: "redis://127.0.0.1:1",
          REDIS_CLUSTER_NODES: cluster.nodes.join(","),
        },
        encoding: "utf8",
        timeout: 60_000,
      },
    );
    const out = JSON.parse(cli.stdout) as { cache: { keysChecked: number; inconsistent: Array<{ productId: number }> } };
    expect(out.cache.keysChecked).toBe(report.keysChecked);
    expect(out.cache.inconsistent.map((i) => i.productId)).toContain(products[0]?.id);
  });

  it("serves the catalog and checkout services on the cluster (REDIS_CLUSTER_NODES)", async () => {
    // Load shedding off: this checks cluster wiring, and a test machine shared by parallel suites
    // makes the event loop's delay cross the shedding bound (503 OVERLOADED, seen).
    const env = { REDIS_CLUSTER_NODES: cluster.nodes.join(","), CACHE_SCHEMA_VERSION: "77", CATALOG_SHED_EVENT_LOOP_DELAY_MS: "0" };
    const port = 4700 + Math.floor(Math.random() * 200);
    const [catalog, checkout] = await Promise.all([spawnService("catalog", port, env), spawnService("checkout", port + 300, env)]);
    closers.push(
      () => catalog.stop(),
      () => checkout.stop(),
    );
    const [p] = await insertProducts(pool, [{ sku: `CLS-${runId()}`, listPriceCents: 321, stock: 2 }]);
    const id = p?.id as number;
    const sources: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${catalog.url}/products/${id}`);
      sources.push(res.headers.get("x-cache") ?? `${res.status} ${await res.text()}`);
    }
    expect(sources[0]).toBe("MISS");
    expect(sources.slice(1).every((s) => s === "HIT" || s === "HIT-L1")).toBe(true);

    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${checkout.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
      });
    const cart = (await (await post("/carts", {})).json()) as { id: string };
    await post(`/carts/${cart.id}/items`, { productId: id, quantity: 1 });
    const order = await fetch(`${checkout.url}/carts/${cart.id}/checkout`, {
      method: "POST",
      headers: { "idempotency-key": `cluster-${runId()}`, "x-user-id": "u1" },
    });
    expect(order.status).toBe(201); // stock gate + rate limiter on the cluster
    expect(((await order.json()) as { totalCents: number }).totalCents).toBe(321);
  });
});
