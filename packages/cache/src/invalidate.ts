import { entityKeys, FENCE_INDEX_PATTERN, slotKeys } from "./keys.ts";
import { masterNodes, type RedisClient } from "./redis-client.ts";
import { withScripts } from "./scripts.ts";

/**
 * Invalidate = delete, never update (docs/architecture.md#invalidation): removes value and lease and
 * raises the fence to the change's version, so a fill that read the row before
 * this change is refused. Idempotent, so at-least-once delivery is fine. The fence has no Redis TTL
 * (memory pressure must not evict it): it is collected `fenceTtlMs` after its last raise by
 * `sweepFences`.
 */
export async function invalidateEntity(
  redis: RedisClient,
  opts: {
    schemaVersion: number;
    entity: string;
    id: string | number;
    version: number;
    fenceTtlMs: number;
    /**
     * An INSERT (re-insert of a deleted id): the delete fence value (e.g. the invalidator's +inf
     * sentinel) this change replaces by its own version, so fills of the new row pass at once instead
     * of being refused until the delete fence is collected. Only safe when versions never go
     * backwards for an id (one sequence for all versions); the sentinel alone is replaced.
     */
    replacesDeleteFence?: number;
  },
): Promise<void> {
  const k = entityKeys(opts.schemaVersion, opts.entity, opts.id);
  await withScripts(redis).fsInvalidate(
    k.value,
    k.lease,
    k.fence,
    slotKeys(k.value).fences,
    String(opts.version),
    String(opts.fenceTtlMs),
    opts.replacesDeleteFence === undefined ? "" : String(opts.replacesDeleteFence),
  );
}

/**
 * Collects the fences whose time is up (docs/architecture.md#failure-modes): on every master, each
 * slot's fence index is swept atomically. Run it periodically from one or more processes
 * (idempotent); returns how many fences it deleted. Fences nobody sweeps only cost memory.
 */
export async function sweepFences(redis: RedisClient, opts: { batch?: number } = {}): Promise<number> {
  const batch = opts.batch ?? 1_000;
  const scripts = withScripts(redis);
  let deleted = 0;
  for (const node of masterNodes(redis)) {
    let cursor = "0";
    do {
      const [next, indexes] = await node.scan(cursor, "MATCH", FENCE_INDEX_PATTERN, "COUNT", 1_000);
      cursor = next;
      for (const index of indexes) {
        for (;;) {
          const n = Number(await scripts.fsSweepFences(index, String(batch)));
          deleted += n;
          if (n < batch) break;
        }
      }
    } while (cursor !== "0");
  }
  return deleted;
}
