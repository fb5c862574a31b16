import { PrivateRedis, waitFor } from "@flashsale/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { invalidateEntity, sweepFences } from "../src/invalidate.ts";
import { entityKeys } from "../src/keys.ts";
import { createRedisClient, type RedisClient } from "../src/redis-client.ts";
import { type Row, testCache } from "./cache-factory.ts";

// A fill is judged by the fence when Redis executes it, not when the catalog sent it. A fill held
// up on the way (a Redis stall, a network partition while TCP retransmits) can be executed after
// the fence that refuses it has expired: it must still be refused, or the value read before the
// write is cached for the whole TTL and no later event removes it. Redis is stalled here with
// CLIENT PAUSE on a private redis-server (never the shared one).
const SCHEMA = 1;
const server = new PrivateRedis(18_800 + Math.floor(Math.random() * 500));
let redis: RedisClient;
let admin: Redis;

beforeAll(async () => {
  await server.start();
  // As the catalog builds it: commands time out after 250 ms while Redis is stalled.
  redis = createRedisClient({ url: server.url, commandTimeoutMs: 250, failFast: true });
  redis.on("error", () => {});
  admin = new Redis(server.url);
  await waitFor(async () => (redis.status === "ready" ? true : undefined), { timeoutMs: 5_000, what: "redis client ready" });
});
afterAll(async () => {
  redis.disconnect();
  admin.disconnect();
  await server.kill();
});

describe("a fill delayed in transit", () => {
  it("is refused once older than maxFillAgeMs on Redis's clock, even after the fence that covered it expired", async () => {
    const id = 1;
    const k = entityKeys(SCHEMA, "product", id);
    const suppressed: string[] = [];
    const cache = testCache(redis, SCHEMA, {
      jitter: 0,
      maxFillAgeMs: 400,
      onSuppressedError: (operation) => suppressed.push(operation),
    });
    let release: (row: Row) => void = () => {};
    let loading = false;
    const reading = cache.get(
      id,
      () =>
        new Promise<Row>((resolve) => {
          loading = true;
          release = resolve;
        }),
    );
    await waitFor(async () => (loading ? true : undefined), { timeoutMs: 2_000, what: "the lease holder's DB read" });

    // The row changes after the read: its invalidation lands, with a fence whose time is up
    // (FENCE_TTL_SECONDS in production; short here) and which the sweeper collects …
    await invalidateEntity(admin, { schemaVersion: SCHEMA, entity: "product", id, version: 2, fenceTtlMs: 1 });
    await waitFor(async () => ((await sweepFences(admin)) > 0 ? true : undefined), { timeoutMs: 2_000, what: "the fence swept" });
    // … and Redis stalls just as the stale fill (version 1) is sent: it waits in Redis past the fence.
    await admin.call("CLIENT", "PAUSE", "1000", "ALL");
    const pausedAt = Date.now();
    release({ id, version: 1 });
    const read = await reading;
    expect(read.value?.version).toBe(1); // the reader itself gets the DB's answer of its time
    expect(suppressed).toContain("fill"); // the catalog saw its fill time out

    await waitFor(async () => (Date.now() > pausedAt + 1_200 ? true : undefined), { timeoutMs: 3_000, what: "the stall to end" });
    expect(await admin.pttl(k.fence)).toBe(-2); // the fence is gone: only the fill's own age can refuse it now
    expect(await admin.get(k.value)).toBeNull();
  });
});
