import { liveSchemaVersions, type RedisClient } from "@flashsale/cache";
import type { ProductChangeRef } from "@flashsale/db";
import { invalidateProduct } from "@flashsale/product-cache";
import type { Logger } from "@flashsale/telemetry";
import { Counter, type Registry } from "prom-client";

export interface WriteEvictionOptions {
  redis: RedisClient;
  /** This catalog's schema version: always evicted, announced or not. */
  schemaVersion: number;
  /** The same fence lifetime as the invalidator's (FENCE_TTL_SECONDS). */
  fenceTtlMs: number;
  /** The whole eviction of one write gives up after this long (the write is committed anyway). */
  timeoutMs?: number;
  logger: Logger;
  metrics: Registry;
}

/** Evicts the products an admin write changed; never throws. */
export type EvictAfterWrite = (changes: ProductChangeRef[]) => Promise<void>;

const BATCH = 500;

/**
 * Read-your-writes for admin writes (docs/architecture.md#invalidation): after its commit, the admin
 * path evicts what it changed itself, through the same fenced INVALIDATE as the invalidator, with the
 * row's new version, for every live schema version (the announced ones and this catalog's own), so
 * the writer's next read from any catalog is fresh. CDC remains the guarantee for every write (this
 * one included): this eviction only makes it earlier. It never fails the write: it is bounded by
 * `timeoutMs`, and a failure or timeout is logged and counted in
 * `catalog_write_evictions_total{outcome}` (per product).
 */
export function writeEviction(opts: WriteEvictionOptions): EvictAfterWrite {
  const timeoutMs = opts.timeoutMs ?? 1_000;
  const counter = new Counter({
    name: "catalog_write_evictions_total",
    help: "Products an admin write evicted itself after its commit, by outcome (evicted, failed: Redis error or timeout; CDC still evicts them)",
    labelNames: ["outcome"],
    registers: [opts.metrics],
  });
  const evicted = counter.labels("evicted");
  const failed = counter.labels("failed");

  async function evictAll(changes: ProductChangeRef[], deadline: number, done: { n: number }): Promise<void> {
    const announced = await liveSchemaVersions(opts.redis);
    const versions = [...new Set([opts.schemaVersion, ...announced])];
    for (let i = 0; i < changes.length; i += BATCH) {
      if (performance.now() > deadline) throw new Error(`write eviction timed out after ${done.n} of ${changes.length} products`);
      const batch = changes.slice(i, i + BATCH);
      // Sent back to back on one connection: one round trip per batch, not per key.
      await Promise.all(
        batch.flatMap((c) =>
          versions.map((schemaVersion) =>
            invalidateProduct(opts.redis, { schemaVersion, id: c.id, version: c.version, fenceTtlMs: opts.fenceTtlMs }),
          ),
        ),
      );
      done.n += batch.length;
    }
  }

  return async (changes) => {
    if (changes.length === 0) return;
    const done = { n: 0 };
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        evictAll(changes, performance.now() + timeoutMs, done),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`write eviction timed out after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (err) {
      opts.logger.warn(
        { err: (err as Error).message, products: changes.length, evicted: done.n },
        "write-path eviction failed; CDC will evict the rest",
      );
    } finally {
      clearTimeout(timer);
      evicted.inc(done.n);
      failed.inc(changes.length - done.n);
    }
  };
}
