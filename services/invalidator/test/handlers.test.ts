/**
 * The change handlers with Redis alone (no Kafka): what a products change and an inventory
 * change do to Redis, and that a write is retried until Redis acknowledges it, across a real
 * redis-server crash and restart.
 */
import { createRedisClient, entityKeys, type RedisClient, StockGate } from "@flashsale/cache";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { PrivateRedis, redisClient, waitFor } from "@flashsale/testkit";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DELETE_FENCE_VERSION, type InventoryChange, type ProductChange } from "../src/change-event.ts";
import { createChangeHandlers, untilRedisAcknowledges } from "../src/handlers.ts";
import { createInvalidatorMetrics, type InvalidatorMetrics } from "../src/metrics.ts";

const SCHEMA = 4_000 + Math.floor(Math.random() * 1_000);
const logger = createLogger("handlers-test", "silent");
const noop = async () => {};
let redis: Redis;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(() => {
  redis = redisClient();
});
afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
  await redis.quit();
});

function handlersOn(client: RedisClient, metrics: InvalidatorMetrics = createInvalidatorMetrics(createMetricsRegistry("handlers-test"))) {
  return createChangeHandlers({
    redis: client,
    schemaVersions: () => [SCHEMA],
    fenceTtlMs: 60_000,
    logger,
    metrics,
    isStopping: () => false,
  });
}

const productChange = (id: number, version: number): ProductChange => ({
  kind: "product",
  id,
  version,
  op: "u",
  committedAtMs: Date.now(),
  traceparent: null,
});
const inventoryChange = (productId: number, available: number | null): InventoryChange => ({
  kind: "inventory",
  productId,
  available,
  committedAtMs: Date.now(),
});

describe("change handlers", () => {
  it("a products change evicts the cached product and fences older fills; a delete fences every fill", async () => {
    const handlers = handlersOn(redis);
    const k = entityKeys(SCHEMA, "product", 11);
    await redis.set(k.value, JSON.stringify({ version: 3, storedAt: 1, expiresAt: 2, delta: 1, value: {} }), "PX", 60_000);
    await redis.set(k.lease, "someone", "PX", 60_000);
    await handlers.applyProductChange(productChange(11, 4), noop);
    expect(await redis.exists(k.value, k.lease)).toBe(0);
    expect(await redis.get(k.fence)).toBe("4");

    await handlers.applyProductChange({ ...productChange(11, DELETE_FENCE_VERSION), op: "d" }, noop);
    expect(await redis.get(k.fence)).toBe(String(DELETE_FENCE_VERSION));
  });

  it("an inventory change syncs the stock gate, a deleted row is forgotten", async () => {
    const handlers = handlersOn(redis);
    const productId = 900_000 + Math.floor(Math.random() * 99_999);
    const avail = StockGate.keys(productId).avail;
    closers.push(() => redis.del(avail));
    await handlers.applyInventoryChange(inventoryChange(productId, 7), noop);
    expect(await redis.get(avail)).toBe("7");
    await handlers.applyInventoryChange(inventoryChange(productId, null), noop);
    expect(await redis.exists(avail)).toBe(0);
  });

  it("retries an eviction until Redis acknowledges it, across a crash and restart, keeping the consumer alive", async () => {
    const server = new PrivateRedis(17_900 + Math.floor(Math.random() * 400));
    await server.start();
    closers.push(() => server.kill());
    // As the invalidator's main.ts builds it: waits for the reconnect instead of failing fast.
    const client = createRedisClient({ url: server.url, commandTimeoutMs: 250, failFast: false });
    client.on("error", () => {});
    closers.push(async () => client.disconnect());
    const registry = createMetricsRegistry("handlers-test");
    const metrics = createInvalidatorMetrics(registry);
    const handlers = handlersOn(client, metrics);

    await server.kill();
    let keepAlives = 0;
    const applying = handlers.applyProductChange(productChange(21, 9), async () => {
      keepAlives++;
    });
    const retries = async () => (await metrics.redisRetries.get()).values[0]?.value ?? 0;
    await waitFor(async () => ((await retries()) >= 2 ? true : undefined), { timeoutMs: 10_000, what: "retries while Redis is down" });
    await server.start();
    await applying;
    expect(keepAlives).toBeGreaterThanOrEqual(2);
    expect(await client.get(entityKeys(SCHEMA, "product", 21).fence)).toBe("9");
  });

  it("gives up only when stopping (the event is replayed after a restart)", async () => {
    let attempts = 0;
    let stopping = false;
    const failing = async () => {
      attempts++;
      if (attempts === 3) stopping = true;
      throw new Error("redis down");
    };
    await expect(untilRedisAcknowledges(failing, { keepAlive: noop, isStopping: () => stopping, onRetry: () => {} })).rejects.toThrow(
      "redis down",
    );
    expect(attempts).toBe(3);
  });
});
