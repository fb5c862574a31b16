import { redisClient, waitFor } from "@flashsale/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CacheEvent, VersionedCache } from "../src/cache.ts";
import { invalidateEntity } from "../src/invalidate.ts";
import { entityKeys } from "../src/keys.ts";
import { type Row, testCache } from "./cache-factory.ts";

// Real Redis. The loader stands in for the Postgres read so each race can be
// forced deterministically: the test decides when "the DB read" returns.
const SCHEMA = 900_000 + Math.floor(Math.random() * 99_999); // a key space of our own
let nextId = 1;
const redises: Redis[] = [];

function newCache(opts: { leaseMs?: number; events?: CacheEvent[]; redis?: Redis } = {}): VersionedCache<Row> {
  const redis = opts.redis ?? redisClient();
  redises.push(redis);
  return testCache(redis, SCHEMA, { leaseMs: opts.leaseMs ?? 2_000, onEvent: (e) => opts.events?.push(e) });
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

let admin: Redis;
beforeAll(() => {
  admin = redisClient();
});
afterAll(async () => {
  const keys = await admin.keys(`catalog:v${SCHEMA}:*`);
  if (keys.length) await admin.del(...keys);
  await Promise.all([admin, ...redises].map((r) => r.quit().catch(() => {})));
});

const invalidate = (id: number, version: number) =>
  invalidateEntity(admin, { schemaVersion: SCHEMA, entity: "product", id, version, fenceTtlMs: 60_000 });

describe("VersionedCache", () => {
  it("misses, fills under a lease, then hits", async () => {
    const id = nextId++;
    const cache = newCache();
    let loads = 0;
    const load = async () => ({ id, version: 1, priceCents: 100, validUntil: null, n: ++loads });
    expect((await cache.get(id, load)).source).toBe("MISS");
    const hit = await cache.get(id, load);
    expect(hit.source).toBe("HIT");
    expect(hit.value?.priceCents).toBe(100);
    expect(loads).toBe(1);
    expect(await admin.exists(entityKeys(SCHEMA, "product", id).lease)).toBe(0);
  });

  it("refuses the stale fill of a reader that raced a write (the classic race)", async () => {
    const id = nextId++;
    const events: CacheEvent[] = [];
    const cache = newCache({ events });
    const oldRead = deferred<Row>();
    // 1. reader misses, takes the lease and reads the OLD row (version 5)...
    const reading = cache.get(id, () => oldRead.promise);
    await waitFor(async () => ((await admin.exists(entityKeys(SCHEMA, "product", id).lease)) ? true : undefined), {
      timeoutMs: 2_000,
      what: "lease taken",
    });
    // 2. ...the writer commits version 6 and the invalidator evicts + fences...
    await invalidate(id, 6);
    // 3. ...then the reader's old row arrives and its fill must be refused.
    oldRead.resolve({ id, version: 5, priceCents: 500, validUntil: null });
    expect((await reading).value?.priceCents).toBe(500); // the reader itself got the DB's answer of its time
    expect(events).toContain("fill_refused");
    expect(await admin.exists(entityKeys(SCHEMA, "product", id).value)).toBe(0);
    // 4. The next read goes to the DB and sees the new price.
    const next = await cache.get(id, async () => ({ id, version: 6, priceCents: 600, validUntil: null }));
    expect(next.source).toBe("MISS");
    expect((await cache.get(id, async () => null)).value?.priceCents).toBe(600);
  });

  it("refuses the stale fill even when the reader's lease expired and another reader filled", async () => {
    const id = nextId++;
    const events: CacheEvent[] = [];
    const slow = newCache({ leaseMs: 100, events });
    const other = newCache({ leaseMs: 100 });
    const oldRead = deferred<Row>();
    const reading = slow.get(id, () => oldRead.promise);
    const lease = entityKeys(SCHEMA, "product", id).lease;
    await waitFor(async () => ((await admin.exists(lease)) ? true : undefined), { timeoutMs: 2_000, what: "lease taken" });
    await waitFor(async () => ((await admin.exists(lease)) ? undefined : true), { timeoutMs: 2_000, what: "lease expired" });
    await invalidate(id, 6);
    // Another process misses, takes a fresh lease and fills the new version.
    await other.get(id, async () => ({ id, version: 6, priceCents: 600, validUntil: null }));
    oldRead.resolve({ id, version: 5, priceCents: 500, validUntil: null });
    await reading;
    expect(events).toContain("fill_refused");
    const served = await other.get(id, async () => {
      throw new Error("must be a hit");
    });
    expect(served).toMatchObject({ source: "HIT", value: { priceCents: 600 } });
  });

  it("refuses a stale fill after the lease expired with nobody else around (fence alone)", async () => {
    const id = nextId++;
    const events: CacheEvent[] = [];
    const cache = newCache({ leaseMs: 100, events });
    const oldRead = deferred<Row>();
    const reading = cache.get(id, () => oldRead.promise);
    const lease = entityKeys(SCHEMA, "product", id).lease;
    await waitFor(async () => ((await admin.exists(lease)) ? true : undefined), { timeoutMs: 2_000, what: "lease taken" });
    await waitFor(async () => ((await admin.exists(lease)) ? undefined : true), { timeoutMs: 2_000, what: "lease expired" });
    await invalidate(id, 6);
    oldRead.resolve({ id, version: 5, priceCents: 500, validUntil: null });
    await reading;
    expect(events).toEqual(["miss", "fill_refused"]);
  });

  it("keeps a cached value that already contains the change (late or replayed events), evicts an older one", async () => {
    const id = nextId++;
    const cache = newCache();
    await cache.get(id, async () => ({ id, version: 3, priceCents: 300, validUntil: null }));
    const key = entityKeys(SCHEMA, "product", id).value;
    await invalidate(id, 2); // e.g. replay after a restart
    await invalidate(id, 3); // e.g. the event of the very write we already read
    expect(await admin.exists(key)).toBe(1);
    await invalidate(id, 4);
    expect(await admin.exists(key)).toBe(0);
    expect(await admin.get(entityKeys(SCHEMA, "product", id).fence)).toBe("4");
    await invalidate(id, 1); // the fence never moves down
    expect(await admin.get(entityKeys(SCHEMA, "product", id).fence)).toBe("4");
  });

  it("coalesces concurrent misses in one process into one load", async () => {
    const id = nextId++;
    const cache = newCache();
    let loads = 0;
    const results = await Promise.all(
      Array.from({ length: 50 }, () => cache.get(id, async () => ({ id, version: 1, priceCents: ++loads, validUntil: null }))),
    );
    expect(loads).toBe(1);
    expect(results.every((r) => r.value?.priceCents === 1)).toBe(true);
  });

  it("lets one of several processes read the DB; the others wait for its fill", async () => {
    const id = nextId++;
    const caches = [newCache(), newCache(), newCache()];
    let loads = 0;
    const slowLoad = async () => {
      loads++;
      await new Promise((r) => setTimeout(r, 50));
      return { id, version: 1, priceCents: 42, validUntil: null };
    };
    const results = await Promise.all(caches.map((c) => c.get(id, slowLoad)));
    expect(loads).toBe(1);
    expect(results.map((r) => r.value?.priceCents)).toEqual([42, 42, 42]);
  });

  it("caps the Redis TTL at validUntil and does not cache past it", async () => {
    const id = nextId++;
    const cache = newCache();
    await cache.get(id, async () => ({ id, version: 1, priceCents: 1, validUntil: Date.now() + 1_500 }));
    const pttl = await admin.pttl(entityKeys(SCHEMA, "product", id).value);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(1_500);

    const gone = nextId++;
    await cache.get(gone, async () => ({ id: gone, version: 1, priceCents: 1, validUntil: Date.now() - 1 }));
    expect(await admin.exists(entityKeys(SCHEMA, "product", gone).value)).toBe(0);
  });

  it("treats a payload it cannot validate as a miss, never serving it", async () => {
    const id = nextId++;
    await admin.set(entityKeys(SCHEMA, "product", id).value, JSON.stringify({ storedAt: 1, value: { legacy: true } }), "PX", 60_000);
    const cache = newCache();
    const read = await cache.get(id, async () => ({ id, version: 2, priceCents: 7, validUntil: null }));
    expect(read).toMatchObject({ source: "MISS", value: { priceCents: 7 } });
  });

  it("bypasses to the loader when Redis is unreachable", async () => {
    const dead = new Redis("redis://127.0.0.1:1", {
      commandTimeout: 100,
      connectTimeout: 100,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
      lazyConnect: true,
    });
    dead.on("error", () => {});
    const cache = newCache({ redis: dead });
    const read = await cache.get(1, async () => ({ id: 1, version: 1, priceCents: 9, validUntil: null }));
    expect(read).toMatchObject({ source: "BYPASS", value: { priceCents: 9 } });
  });
});
