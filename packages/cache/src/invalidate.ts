import { entityKeys } from "./keys.ts";
import type { RedisClient } from "./redis-client.ts";
import { withScripts } from "./scripts.ts";

/**
 * Invalidate = delete, never update (docs/architecture.md#invalidation): removes value and lease and
 * raises the fence to the change's version, so a fill that read the row before
 * this change is refused. Idempotent, so at-least-once delivery is fine.
 */
export async function invalidateEntity(
  redis: RedisClient,
  opts: { schemaVersion: number; entity: string; id: string | number; version: number; fenceTtlMs: number },
): Promise<void> {
  const k = entityKeys(opts.schemaVersion, opts.entity, opts.id);
  await withScripts(redis).fsInvalidate(k.value, k.lease, k.fence, String(opts.version), String(opts.fenceTtlMs));
}
