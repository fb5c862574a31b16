import { Writable } from "node:stream";
import { createRedisClient, type RedisClient } from "@flashsale/cache";
import type { Product } from "@flashsale/db";
import { createProductCache } from "@flashsale/product-cache";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { PrivateRedis, waitFor } from "@flashsale/testkit";
import type { Registry } from "prom-client";
import { afterAll, describe, expect, it } from "vitest";
import { cacheTelemetry } from "../src/cache-telemetry.ts";

// The failures the product cache swallows on purpose must leave a trace: a warn log line with the
// operation and catalog_cache_suppressed_errors_total{operation}. Each case kills a real private
// redis-server at the worst moment (inside the DB read), as a crash would.

const servers: PrivateRedis[] = [];
const clients: RedisClient[] = [];
afterAll(async () => {
  for (const c of clients) c.disconnect();
  for (const s of servers) await s.kill();
});

const product = (id: number, version: number): Product => ({
  id,
  sku: `SUP-${id}`,
  name: "suppressed",
  description: "",
  currency: "EUR",
  priceCents: 100 * version,
  listPriceCents: 100 * version,
  sale: null,
  version,
  updatedAt: new Date().toISOString(),
  validUntil: null,
});

/** A product cache wired exactly as the catalog wires it, on a redis-server of its own. */
async function catalogCache(ttlSeconds: number) {
  const server = new PrivateRedis(17_400 + Math.floor(Math.random() * 500));
  servers.push(server);
  await server.start();
  const redis = createRedisClient({ url: server.url, commandTimeoutMs: 250, failFast: true });
  redis.on("error", () => {});
  clients.push(redis);
  await waitFor(async () => (redis.status === "ready" ? true : undefined), { timeoutMs: 5_000, what: "redis client ready" });
  const lines: Array<{ level: number; operation?: string; err?: string; msg: string }> = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  const metrics = createMetricsRegistry("catalog-suppressed-test");
  const cache = createProductCache({
    redis,
    schemaVersion: 1,
    ttlSeconds,
    leaseMs: 2_000,
    ...cacheTelemetry(metrics, createLogger("catalog-suppressed-test", "warn", sink)),
  });
  return { server, cache, metrics, lines };
}

async function suppressedCount(metrics: Registry, operation: string): Promise<number> {
  const metric = await metrics.getSingleMetric("catalog_cache_suppressed_errors_total")?.get();
  return metric?.values.find((v) => v.labels.operation === operation)?.value ?? 0;
}

describe("errors the product cache does not propagate", () => {
  it("logs and counts a lease release that failed because Redis died during the DB read", async () => {
    const { server, cache, metrics, lines } = await catalogCache(3600);
    // The lease holder's DB read fails after Redis crashed: the reader gets the DB error, and the
    // lease cannot be released (waiters then wait it out): that must not go unnoticed.
    const read = cache.get(1, async () => {
      await server.kill();
      throw new Error("postgres: connection refused");
    });
    await expect(read).rejects.toThrow("connection refused");
    expect(await suppressedCount(metrics, "lease_release")).toBe(1);
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 40, operation: "lease_release", msg: expect.stringContaining("lease_release") }),
    );
  });

  it("logs and counts a background refresh that failed because Redis died during it", async () => {
    const { server, cache, metrics, lines } = await catalogCache(0.2);
    await cache.get(2, async () => product(2, 1));
    const expiredAt = Date.now() + 250; // the TTL (200 ms ± 5 %) is over, the grace period is not
    await waitFor(async () => (Date.now() >= expiredAt ? true : undefined), { timeoutMs: 2_000, what: "the TTL to pass" });
    // Served stale while one caller refreshes; Redis crashes while the refresh reads the DB.
    const stale = await cache.get(2, async () => {
      await server.kill();
      return product(2, 2);
    });
    expect(stale).toMatchObject({ source: "STALE", value: { version: 1 } });
    await waitFor(async () => ((await suppressedCount(metrics, "background_refresh")) === 1 ? true : undefined), {
      timeoutMs: 5_000,
      what: "the failed refresh to be counted",
    });
    expect(lines).toContainEqual(expect.objectContaining({ level: 40, operation: "background_refresh", err: expect.any(String) }));
  });
});
