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
   * Versions that appeared after the first read, called once they are being evicted: a catalog on such
   * a version may have filled before we evicted for it, so its keys are retired (consumer.ts).
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
      const added = first ? [] : next.filter((v) => !versions.includes(v));
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
