import { liveSchemaVersions, type RedisClient } from "@flashsale/cache";
import type { Logger } from "@flashsale/telemetry";

/**
 * The cache schema versions the invalidator evicts (docs/architecture.md#invalidator): every version a
 * catalog announced and whose announcement has not expired (`liveSchemaVersions`), refreshed every
 * `refreshMs`, always including our own configured one. A version nobody announces any more drops
 * out at the next refresh. While Redis cannot be read the last known set is kept (it only grows
 * stale towards evicting too much, never too little).
 */
export function trackSchemaVersions(opts: {
  redis: RedisClient;
  own: number;
  refreshMs?: number;
  logger: Logger;
  /**
   * Versions we did not evict before (every announced one but our own at the first read, then each
   * that appears), called once they are being evicted: a catalog on such a version may have filled
   * before we evicted for it, so its keys are retired (consumer.ts).
   */
  onAdded?(versions: number[]): void;
}): {
  current(): readonly number[];
  refresh(): Promise<void>;
  stop(): void;
} {
  let versions: readonly number[] = [opts.own];
  let first = true;
  const refresh = async () => {
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
      if (added.length > 0) opts.onAdded?.(added);
    } catch (err) {
      opts.logger.warn({ err: (err as Error).message }, "could not read the live cache schema versions; keeping the last set");
    }
  };
  const timer = setInterval(refresh, opts.refreshMs ?? 1_000);
  timer.unref();
  return { current: () => versions, refresh, stop: () => clearInterval(timer) };
}
