import { keyPrefix, masterNodes, parseKey, type RedisClient, StockGate } from "@flashsale/cache";
import { invalidateProduct, PRODUCT_ENTITY, productKeys } from "@flashsale/product-cache";
import { type Logger, spanContextFromTraceparent, trace } from "@flashsale/telemetry";
import { DELETE_FENCE_VERSION, type InventoryChange, type ProductChange, type ProductsRetired } from "./change-event.ts";
import type { InvalidatorMetrics } from "./metrics.ts";

const MAX_BACKOFF_MS = 5_000;
/** Evictions in flight on the Redis connection at once (one pipelined burst, then the next). */
const PIPELINE_CHUNK = 2_000;
const tracer = trace.getTracer("flashsale-invalidator");

/** Called while a write is being retried (the Kafka consumer passes its heartbeat: a long outage must not cost the group membership). */
export type KeepAlive = () => Promise<void>;

export interface ChangeHandlers {
  /** Evicts the product's cache entry and fences older fills; returns once Redis acknowledged. */
  applyProductChange(change: ProductChange, keepAlive: KeepAlive): Promise<void>;
  /**
   * A batch of product changes: de-duplicated per id (the highest version wins: it evicts and
   * fences everything the lower ones would), every eviction of every live schema version sent
   * pipelined; returns once Redis acknowledged all of them.
   */
  applyProductChanges(changes: readonly ProductChange[], keepAlive: KeepAlive): Promise<void>;
  /** Retires every product key of every live schema version (a truncate, a cache epoch). */
  retireProducts(retire: ProductsRetired, keepAlive: KeepAlive): Promise<void>;
  /** Syncs the stock gate with Postgres' `available`; returns once Redis acknowledged. */
  applyInventoryChange(change: InventoryChange, keepAlive: KeepAlive): Promise<void>;
  /** A batch of inventory changes (in partition order: the last one per product wins). */
  applyInventoryChanges(changes: readonly InventoryChange[], keepAlive: KeepAlive): Promise<void>;
}

/**
 * What a change event does to Redis, apart from how it arrives (consumer.ts): a products change
 * evicts + fences the product's cache key in every live schema version
 * (docs/architecture.md#invalidation), an inventory change syncs the checkout's stock gate. Each
 * returns only once Redis acknowledged the write, retrying with backoff while Redis is down
 * (nothing is dropped): the caller commits the offset after.
 */
export function createChangeHandlers(opts: {
  redis: RedisClient;
  /** The schema versions to evict (schema-versions.ts: the announced ones plus our own). */
  schemaVersions: () => readonly number[];
  fenceTtlMs: number;
  logger: Logger;
  metrics: InvalidatorMetrics;
  /** True once shutting down: a retry then gives up (the offset stays uncommitted, the event is replayed). */
  isStopping: () => boolean;
}): ChangeHandlers {
  const gate = new StockGate(opts.redis);
  const untilAcknowledged = (write: () => Promise<void>, keepAlive: KeepAlive, what: object) =>
    untilRedisAcknowledges(write, {
      keepAlive,
      isStopping: opts.isStopping,
      onRetry: (err, backoffMs) => {
        opts.metrics.redisRetries.inc();
        opts.logger.warn({ err: err.message, ...what, backoff: backoffMs }, "redis write failed, retrying");
      },
    });

  /** Every (version, id) eviction, sent in pipelined chunks; resolves once all were acknowledged. */
  const evictAll = async (latest: ReadonlyMap<number, LatestChange>) => {
    const versions = opts.schemaVersions();
    const targets: Parameters<typeof invalidateProduct>[1][] = [];
    for (const [id, { version, replacesDeleteFence }] of latest) {
      for (const schemaVersion of versions) {
        targets.push({
          schemaVersion,
          id,
          version,
          fenceTtlMs: opts.fenceTtlMs,
          ...(replacesDeleteFence ? { replacesDeleteFence: DELETE_FENCE_VERSION } : {}),
        });
      }
    }
    for (let i = 0; i < targets.length; i += PIPELINE_CHUNK) {
      // ioredis writes every command of the chunk before the first reply arrives: one pipeline.
      await Promise.all(targets.slice(i, i + PIPELINE_CHUNK).map((t) => invalidateProduct(opts.redis, t)));
    }
  };

  const applyProductChanges: ChangeHandlers["applyProductChanges"] = async (changes, keepAlive) => {
    if (changes.length === 0) return;
    const latest = latestPerProduct(changes);
    // Spans only for traced writes (an admin change); a bulk import's rows are not traced one by one.
    const tracedIds: number[] = [];
    const links = changes.flatMap((c) => {
      const ctx = c.traceparent ? spanContextFromTraceparent(c.traceparent) : undefined;
      if (ctx) tracedIds.push(c.id);
      return ctx ? [{ context: ctx }] : [];
    });
    const write = () => untilAcknowledged(() => evictAll(latest), keepAlive, { products: latest.size });
    if (links.length > 0) {
      await tracer.startActiveSpan(
        "invalidate products",
        { links, attributes: { "flashsale.products": latest.size, "flashsale.product_ids": tracedIds } },
        async (span) => {
          try {
            await write();
          } finally {
            span.end();
          }
        },
      );
    } else {
      await write();
    }
    const now = Date.now();
    for (const c of changes) opts.metrics.lag.observe(Math.max(0, now - c.committedAtMs) / 1000);
    opts.metrics.events.inc({ outcome: "evicted" }, changes.length);
  };

  /** One sweep: every product id with a key (value, lease or fence) in a live version, evicted at the floor. */
  const sweep = async (retire: ProductsRetired) => {
    for (const schemaVersion of retire.schemaVersions ?? opts.schemaVersions()) {
      const ids = new Set<string>();
      for (const node of masterNodes(opts.redis)) {
        let cursor = "0";
        do {
          const [next, keys] = await node.scan(cursor, "MATCH", `${keyPrefix(schemaVersion)}*`, "COUNT", 1000);
          cursor = next;
          for (const k of keys) {
            const parsed = parseKey(k);
            if (parsed && parsed.entity === PRODUCT_ENTITY && parsed.schemaVersion === schemaVersion) ids.add(parsed.id);
          }
        } while (cursor !== "0");
      }
      const list = [...ids];
      for (let i = 0; i < list.length; i += PIPELINE_CHUNK) {
        const chunk = list.slice(i, i + PIPELINE_CHUNK);
        if (retire.currentVersions) {
          const current = await retire.currentVersions(chunk.map(Number));
          await Promise.all(
            chunk.map((id) =>
              invalidateProduct(opts.redis, {
                schemaVersion,
                id: Number(id),
                version: current.get(Number(id)) ?? DELETE_FENCE_VERSION,
                fenceTtlMs: opts.fenceTtlMs,
              }),
            ),
          );
        } else if (retire.versionFloor === null) {
          // Debezium's truncate event: no floor known, drop the values (the epoch row fences).
          await Promise.all(chunk.map((id) => opts.redis.del(productKeys(schemaVersion, Number(id)).value)));
        } else {
          const version = retire.versionFloor;
          await Promise.all(
            chunk.map((id) => invalidateProduct(opts.redis, { schemaVersion, id: Number(id), version, fenceTtlMs: opts.fenceTtlMs })),
          );
        }
      }
    }
  };

  return {
    applyProductChange: (change, keepAlive) => applyProductChanges([change], keepAlive),
    applyProductChanges,

    async retireProducts(retire, keepAlive) {
      await untilAcknowledged(() => sweep(retire), keepAlive, { retire: retire.reason });
      opts.logger.warn({ reason: retire.reason, versionFloor: retire.versionFloor }, "product keyspace retired");
      opts.metrics.events.inc({ outcome: "keyspace_retired" });
      // A fill whose lease had already expired leaves no key for the sweep to find, and may still
      // land until its deadline (lease + maximum fill age, under the fence TTL): sweep again then.
      if (retire.versionFloor !== null || retire.currentVersions) {
        const again = setTimeout(
          () => {
            untilAcknowledged(
              () => sweep(retire),
              async () => {},
              { retire: retire.reason, sweep: 2 },
            ).catch(() => {});
          },
          Math.min(opts.fenceTtlMs, 15_000),
        );
        again.unref();
      }
    },

    applyInventoryChange: (change, keepAlive) => applyInventoryChangesImpl([change], keepAlive),
    applyInventoryChanges: (changes, keepAlive) => applyInventoryChangesImpl(changes, keepAlive),
  };

  async function applyInventoryChangesImpl(changes: readonly InventoryChange[], keepAlive: KeepAlive) {
    if (changes.length === 0) return;
    const last = new Map<number, number | null>();
    for (const c of changes) last.set(c.productId, c.available);
    await untilAcknowledged(
      async () => {
        await Promise.all(
          [...last].map(([productId, available]) => (available === null ? gate.forget(productId) : gate.sync(productId, available))),
        );
      },
      keepAlive,
      { stockChanges: last.size },
    );
    opts.metrics.events.inc({ outcome: "stock_synced" }, changes.length);
  }
}

/**
 * Runs `write` until it succeeds, backing off 50 ms doubling to 5 s, calling `keepAlive` between
 * attempts. Throws only once `isStopping()` is true (the event is then replayed after a restart).
 */
export async function untilRedisAcknowledges(
  write: () => Promise<void>,
  o: { keepAlive: KeepAlive; isStopping: () => boolean; onRetry(err: Error, backoffMs: number): void },
): Promise<void> {
  let backoff = 50;
  for (;;) {
    try {
      await write();
      return;
    } catch (err) {
      if (o.isStopping()) throw err;
      o.onRetry(err as Error, backoff);
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      await o.keepAlive();
    }
  }
}

interface LatestChange {
  version: number;
  /** The row exists again after a delete: its version may replace the delete fence (see below). */
  replacesDeleteFence: boolean;
}

/**
 * One eviction per product for a batch (docs/architecture.md#invalidator). The changes of one id
 * arrive in commit order (one partition), and versions come from one sequence, so the last change
 * wins: a delete fences at +infinity; any later insert or update means the row exists again at a
 * higher version than anything read before the delete, so its version may replace the delete
 * fence (the Lua replaces that sentinel only, never a real version): a re-inserted id fills at once
 * instead of being refused until the delete fence is collected.
 */
export function latestPerProduct(changes: readonly ProductChange[]): Map<number, LatestChange> {
  const latest = new Map<number, LatestChange>();
  for (const c of changes) {
    const prev = latest.get(c.id);
    if (c.op === "d") latest.set(c.id, { version: DELETE_FENCE_VERSION, replacesDeleteFence: false });
    else if (!prev || prev.version === DELETE_FENCE_VERSION || c.version > prev.version) {
      latest.set(c.id, { version: c.version, replacesDeleteFence: true });
    }
  }
  return latest;
}
