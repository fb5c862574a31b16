import { liveSchemaVersions, type RedisClient, recordSchemaCoverage } from "@flashsale/cache";
import type { Logger } from "@flashsale/telemetry";

/**
 * The cache schema versions the invalidator evicts (docs/architecture.md#invalidator): every version a
 * catalog announced and whose announcement has not expired (`liveSchemaVersions`), refreshed every
 * `refreshMs`, always including our own configured one. A version nobody announces any more drops
 * out at the next refresh. While Redis cannot be read the last known set is kept (it only grows
 * stale towards evicting too much, never too little).
 *
 * Coverage (docs/architecture.md#freshness): the versions whose keys the watermark speaks for are
 * recorded in Redis, renewed every refresh with an expiry on Redis's clock (a dead invalidator's
 * coverage lapses on its own): our own from the start (always evicted), any other only once
 * `markCovered` says its retire completed. A version that drops out, and everything at `stop`, is
 * removed at once. Catalogs do not trust the watermark for a version not covered.
 */
export function trackSchemaVersions(opts: {
  redis: RedisClient;
  own: number;
  refreshMs?: number;
  /** How long one recording of coverage lasts without renewal (default 3 refreshes, at least 3 s). */
  coverageTtlMs?: number;
  logger: Logger;
  /**
   * Versions we did not evict before (every announced one but our own at the first read, then each
   * that appears), called once they are being evicted: a catalog on such a version may have filled
   * before we evicted for it, so its keys are retired (consumer.ts), then `markCovered`.
   */
  onAdded?(versions: number[]): void;
}): {
  current(): readonly number[];
  /** The versions recorded as covered (evicted, and retired unless our own). */
  covered(): readonly number[];
  /** The retire of these (reported by onAdded) completed: record them covered while still evicted. */
  markCovered(versions: readonly number[]): Promise<void>;
  refresh(): Promise<void>;
  stop(): Promise<void>;
} {
  const refreshMs = opts.refreshMs ?? 1_000;
  const ttlMs = opts.coverageTtlMs ?? Math.max(3_000, 3 * refreshMs);
  let versions: readonly number[] = [opts.own];
  let covered = new Set<number>([opts.own]);
  let first = true;
  let stopped = false;
  const record = async (dropped: readonly number[] = []) => {
    if (stopped) return;
    try {
      await recordSchemaCoverage(opts.redis, { versions: [...covered], dropped, ttlMs });
    } catch (err) {
      // Not renewed: it lapses within ttlMs and catalogs revalidate (safe).
      opts.logger.warn({ err: (err as Error).message }, "could not record the covered cache schema versions");
    }
  };
  const refresh = async () => {
    let dropped: number[] = [];
    try {
      const live = await liveSchemaVersions(opts.redis);
      const next = [...new Set([opts.own, ...live])].sort((a, b) => a - b);
      if (next.join() !== versions.join()) opts.logger.info({ schemaVersions: next }, "evicting cache schema versions");
      // The first read reports every version but our own too: a version announced while no
      // invalidator ran (a catalog started on it during our restart, e.g. the deploy that rolls it
      // forward again) was not evicted meanwhile, and its keys from an earlier life may be stale.
      const added = next.filter((v) => (first ? v !== opts.own : !versions.includes(v)));
      versions = next;
      first = false;
      // No longer evicted: no longer covered (if it comes back, it is retired again first).
      dropped = [...covered].filter((v) => !next.includes(v));
      covered = new Set([...covered].filter((v) => next.includes(v)));
      if (added.length > 0) opts.onAdded?.(added);
    } catch (err) {
      opts.logger.warn({ err: (err as Error).message }, "could not read the live cache schema versions; keeping the last set");
    }
    await record(dropped);
  };
  const timer = setInterval(refresh, refreshMs);
  timer.unref();
  return {
    current: () => versions,
    covered: () => [...covered].sort((a, b) => a - b),
    async markCovered(done) {
      const still = done.filter((v) => versions.includes(v));
      if (still.length === 0) return;
      for (const v of still) covered.add(v);
      await record();
    },
    refresh,
    async stop() {
      clearInterval(timer);
      if (stopped) return;
      const all = [...covered];
      covered = new Set();
      await record(all); // we stop evicting: nothing covered by us any more
      stopped = true;
    },
  };
}
