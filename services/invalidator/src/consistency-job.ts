import type { RedisClient } from "@flashsale/cache";
import { checkCacheConsistency, repairInconsistencies, type ScanPosition } from "@flashsale/consistency";
import type { Logger } from "@flashsale/telemetry";
import type pg from "pg";
import { Counter, Gauge, type Registry } from "prom-client";

/**
 * The consistency checker as a periodic job (docs/architecture.md#invalidator): samples up to `maxKeys` cached
 * products every `intervalMs` and exports what it found, so a dashboard shows the
 * cache's consistency in nines next to the invalidation lag. Each check continues where the last
 * one stopped, so with more cached products than `maxKeys` successive checks still cover all of
 * them. A check that fails is counted and leaves `keys_checked` at 0: the gauges never keep
 * reporting an old "no stale keys" while nothing is being checked. Every live schema version is
 * checked (the same set the invalidator evicts). What is stale beyond the grace period is repaired
 * by eviction (safe: a miss re-reads Postgres) and counted, so a hole in the pipeline shows as
 * `cache_consistency_repairs_total` rising instead of a stale price served until its TTL.
 */
export function startConsistencyJob(opts: {
  redis: RedisClient;
  pool: pg.Pool;
  /** The schema versions to check (the invalidator's live set). */
  schemaVersions: () => readonly number[];
  intervalMs: number;
  maxKeys: number;
  metrics: Registry;
  logger: Logger;
}): { stop(): void } {
  const checked = new Gauge({
    name: "cache_consistency_keys_checked",
    help: "Cached products compared with Postgres in the last check",
    registers: [opts.metrics],
  });
  const stale = new Gauge({
    name: "cache_consistency_stale_keys",
    help: "Cached products disagreeing with Postgres for longer than the grace period (2 s) in the last check",
    registers: [opts.metrics],
  });
  const oldest = new Gauge({
    name: "cache_consistency_oldest_inconsistency_seconds",
    help: "Age of the oldest inconsistency in the last check",
    registers: [opts.metrics],
  });
  const failures = new Counter({
    name: "cache_consistency_check_failures_total",
    help: "Consistency checks that failed (Redis or Postgres unreachable, or a bad key): nothing was checked",
    registers: [opts.metrics],
  });
  const lastSuccess = new Gauge({
    name: "cache_consistency_last_success_timestamp_seconds",
    help: "When the last consistency check completed (alert when it is old)",
    registers: [opts.metrics],
  });
  const repairs = new Counter({
    name: "cache_consistency_repairs_total",
    help: "Cached products stale beyond the grace period that the consistency job evicted (each one a hole in the invalidation pipeline)",
    registers: [opts.metrics],
  });
  const positions = new Map<number, ScanPosition>();
  let running = false;
  const timer = setInterval(async () => {
    if (running) return; // a slow check is not stacked on another
    running = true;
    try {
      let keys = 0;
      let staleKeys = 0;
      let oldestMs = 0;
      for (const schemaVersion of opts.schemaVersions()) {
        const from = positions.get(schemaVersion);
        const r = await checkCacheConsistency({
          redis: opts.redis,
          pool: opts.pool,
          schemaVersion,
          maxKeys: opts.maxKeys,
          ...(from ? { from } : {}),
        });
        positions.set(schemaVersion, r.next);
        keys += r.keysChecked;
        staleKeys += r.staleBeyondGrace;
        oldestMs = Math.max(oldestMs, ...r.inconsistent.map((i) => i.ageMs));
        if (r.staleBeyondGrace > 0) {
          const repaired = await repairInconsistencies(opts.redis, r);
          repairs.inc(repaired);
          opts.logger.warn({ schemaVersion, repaired, inconsistent: r.inconsistent.slice(0, 10) }, "stale cache entries found and evicted");
        }
      }
      checked.set(keys);
      lastSuccess.setToCurrentTime();
      stale.set(staleKeys);
      oldest.set(oldestMs / 1000);
    } catch (err) {
      failures.inc();
      checked.set(0);
      opts.logger.warn({ err: (err as Error).message }, "consistency check failed");
    } finally {
      running = false;
    }
  }, opts.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
