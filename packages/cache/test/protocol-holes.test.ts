import { redisClient, waitFor } from "@flashsale/testkit";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CacheEvent } from "../src/cache.ts";
import { invalidateEntity } from "../src/invalidate.ts";
import { entityKeys, keyPrefix } from "../src/keys.ts";
import { L1Invalidations } from "../src/l1-invalidations.ts";
import { type Row, testCache } from "./cache-factory.ts";

// Issue 12 items 8 and 9, issue 13 item 3 (races): real Redis (the test stack's db), a key space of
// our own; the loader stands in for the Postgres read so each race is forced deterministically.
const SCHEMA = 600_000 + Math.floor(Math.random() * 99_999);
let nextId = 1;
let redis: Redis;
let admin: Redis;

beforeAll(() => {
  redis = redisClient();
  admin = redisClient();
});
afterAll(async () => {
  const keys = await admin.keys(`catalog:v${SCHEMA}:*`);
  if (keys.length) await admin.del(...keys);
  await Promise.all([redis, admin].map((r) => r.quit().catch(() => {})));
});

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const invalidate = (id: number, version: number) =>
  invalidateEntity(admin, { schemaVersion: SCHEMA, entity: "product", id, version, fenceTtlMs: 60_000 });

describe("in-process coalescing (issue 12 item 8)", () => {
  it("does not hand a read begun before an invalidation to a request that starts after it", async () => {
    const id = nextId++;
    const invalidations = new L1Invalidations(redis, keyPrefix(SCHEMA));
    await invalidations.start();
    try {
      const events: CacheEvent[] = [];
      const cache = testCache(redis, SCHEMA, { jitter: 0, events, l1: { invalidations } });
      await waitFor(async () => (invalidations.isUp ? true : undefined), { timeoutMs: 3_000, what: "L1 channel up" });
      const preWrite = deferred<Row>();
      let loads = 0;
      const first = cache.get(id, () => (++loads === 1 ? preWrite.promise : Promise.resolve({ id, version: 2 })));
      await waitFor(async () => (loads === 1 ? true : undefined), { timeoutMs: 2_000, what: "the first DB read" });
      // The write commits and its eviction lands (the message reaches this process) while the read is in flight.
      const heard = events.length;
      await invalidate(id, 2);
      await new Promise((r) => setTimeout(r, 150));
      expect(events.length).toBe(heard); // no read happened meanwhile
      const second = cache.get(id, () => Promise.resolve({ id, version: 2 }));
      preWrite.resolve({ id, version: 1 });
      expect((await first).value?.version).toBe(1); // the reader that began before the write gets its own answer
      expect((await second).value?.version).toBe(2);
      expect(events).toContain("coalesce_skipped");
    } finally {
      await invalidations.stop();
    }
  });
});

describe("a refused fill (issue 12 item 9)", () => {
  it("releases its lease: after a delete fence, the next reader does not wait the lease out", async () => {
    const id = nextId++;
    await invalidate(id, 5); // e.g. the delete of the row, its fence above what the re-inserted row reads as
    const a: CacheEvent[] = [];
    await testCache(redis, SCHEMA, { jitter: 0, events: a }).get(id, async () => ({ id, version: 1 }));
    expect(a).toContain("fill_refused");
    expect(await admin.exists(entityKeys(SCHEMA, "product", id).lease)).toBe(0);
    const b: CacheEvent[] = [];
    const t0 = performance.now();
    const read = await testCache(redis, SCHEMA, { jitter: 0, events: b, waitForFillMs: 1_000 }).get(id, async () => ({ id, version: 1 }));
    expect(read.value?.version).toBe(1);
    expect(b).not.toContain("lease_wait");
    expect(performance.now() - t0).toBeLessThan(500);
  });
});

describe("readers waiting for a fill that is refused (issue 12 item 9)", () => {
  it("take the released lease over at once instead of waiting out waitForFillMs", async () => {
    const id = nextId++;
    await invalidate(id, 5);
    const holderRead = deferred<Row>();
    let holderStarted = false;
    const holder = testCache(redis, SCHEMA, { jitter: 0 }).get(id, () => {
      holderStarted = true;
      return holderRead.promise;
    });
    await waitFor(async () => (holderStarted ? true : undefined), { timeoutMs: 2_000, what: "the holder's DB read" });
    const events: CacheEvent[] = [];
    const waiter = testCache(redis, SCHEMA, { jitter: 0, events, waitForFillMs: 3_000 }).get(id, async () => ({ id, version: 1 }));
    await new Promise((r) => setTimeout(r, 50));
    const refusedAt = performance.now();
    holderRead.resolve({ id, version: 1 }); // refused by the fence: its lease is released
    await holder;
    const read = await waiter;
    expect(read.value?.version).toBe(1);
    expect(events).toContain("lease_wait");
    expect(events).not.toContain("lease_wait_timeout");
    expect(performance.now() - refusedAt).toBeLessThan(1_000);
  });
});

describe("a re-inserted id (issue 12 item 9: the delete fence need not hold for its whole time)", () => {
  it("replaces the +inf delete fence by the re-insert's version: its fills pass at once, older ones stay refused", async () => {
    const id = nextId++;
    const k = entityKeys(SCHEMA, "product", id);
    const DELETED = Number.MAX_SAFE_INTEGER;
    await invalidate(id, DELETED);
    const insert = { schemaVersion: SCHEMA, entity: "product", id, version: 70, fenceTtlMs: 60_000, replacesDeleteFence: DELETED };
    await invalidateEntity(admin, insert);
    expect(await admin.get(k.fence)).toBe("70");
    const events: CacheEvent[] = [];
    const cache = testCache(redis, SCHEMA, { jitter: 0, events });
    await cache.get(id, async () => ({ id, version: 70 }));
    expect(events).toEqual(["miss", "fill"]);
    // A replayed insert after a later update never lowers the update's fence.
    await invalidate(id, 90);
    await invalidateEntity(admin, insert);
    expect(await admin.get(k.fence)).toBe("90");
    const older: CacheEvent[] = [];
    await testCache(redis, SCHEMA, { jitter: 0, events: older }).get(id, async () => ({ id, version: 80 }));
    expect(older).toContain("fill_refused");
  });
});

describe("negative caching (issue 13 item 3)", () => {
  it("caches absent under the lease, and an invalidation (an INSERT through CDC) evicts the marker", async () => {
    const id = nextId++;
    const events: CacheEvent[] = [];
    const cache = testCache(redis, SCHEMA, { jitter: 0, events, negativeTtlMs: 5_000 });
    let loads = 0;
    const missing = async () => {
      loads++;
      return null;
    };
    const answers = await Promise.all(Array.from({ length: 50 }, () => cache.get(id, missing)));
    for (let i = 0; i < 150; i++) answers.push(await cache.get(id, missing));
    expect(answers.every((r) => r.value === null)).toBe(true);
    expect(loads).toBeLessThanOrEqual(2);
    expect(await admin.pttl(entityKeys(SCHEMA, "product", id).value)).toBeLessThanOrEqual(5_000);
    await invalidate(id, 1);
    expect((await cache.get(id, async () => ({ id, version: 1 }))).value?.version).toBe(1);
  });

  it("refuses the absent fill of a read that raced the INSERT", async () => {
    const id = nextId++;
    const events: CacheEvent[] = [];
    const cache = testCache(redis, SCHEMA, { jitter: 0, events, negativeTtlMs: 5_000 });
    const read = deferred<Row | null>();
    let started = false;
    const racing = cache.get(id, () => {
      started = true;
      return read.promise;
    });
    await waitFor(async () => (started ? true : undefined), { timeoutMs: 2_000, what: "the DB read" });
    await invalidate(id, 1); // the row is inserted (and its event applied) after the read saw nothing
    read.resolve(null);
    expect((await racing).value).toBeNull();
    expect(events).toContain("fill_refused");
    expect(await admin.get(entityKeys(SCHEMA, "product", id).value)).toBeNull();
  });

  it("refuses it when the fence moved down since the lease (a delete fence at +inf lowered to the re-insert's version)", async () => {
    const id = nextId++;
    const k = entityKeys(SCHEMA, "product", id);
    await invalidate(id, Number.MAX_SAFE_INTEGER); // the row was deleted
    const events: CacheEvent[] = [];
    const cache = testCache(redis, SCHEMA, { jitter: 0, events, negativeTtlMs: 5_000 });
    const read = deferred<Row | null>();
    let started = false;
    const racing = cache.get(id, () => {
      started = true;
      return read.promise;
    });
    await waitFor(async () => (started ? true : undefined), { timeoutMs: 2_000, what: "the DB read" });
    await admin.set(k.fence, "7"); // re-inserted at version 7; a fence that only compared "above" would let "absent" in
    read.resolve(null);
    await racing;
    expect(events).toContain("fill_refused");
    expect(await admin.get(k.value)).toBeNull();
  });
});
