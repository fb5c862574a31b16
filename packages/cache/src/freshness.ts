/**
 * Freshness facts the catalogs and the invalidator share through Redis (docs/architecture.md#freshness).
 * Owned here like every other key: two keys outside every schema version's prefix, so neither is
 * ever under an L1 tracking prefix nor matched by `parseKey`.
 *
 * Clocks: both facts are kept on **Redis's own clock** (Lua `TIME`), never an app server's, so app
 * clock skew cannot make them lie. The producer of the watermark converts the database commit time
 * of the heartbeat it applied into Redis-clock milliseconds (conservatively: minus its measured
 * DB↔Redis offset uncertainty); a reader gets the watermark's *age* computed by Redis in the same
 * script, and ages it further on its own monotonic clock.
 */
import type { RedisClient } from "./redis-client.ts";

const WATERMARK_KEY = "catalog:freshness:watermark";
const SCHEMA_VERSIONS_KEY = "catalog:freshness:schema-versions";

const NOW_MS = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/** KEYS: watermark. ARGV: watermark ms on Redis's clock. Moves only forward; returns the stored value. */
const PUBLISH_WATERMARK = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local w = tonumber(ARGV[1])
if w > cur then redis.call('SET', KEYS[1], ARGV[1]) return w end
return cur
`;

/** KEYS: watermark. Returns the watermark's age in ms on Redis's clock, or -1 if none was ever published. */
const WATERMARK_AGE = `${NOW_MS}
local w = tonumber(redis.call('GET', KEYS[1]) or '-1')
if w < 0 then return -1 end
return now - w
`;

/** KEYS: versions zset. ARGV: version, ttlMs. Announces a live version until Redis-now + ttl. */
const ANNOUNCE = `${NOW_MS}
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
`;

/** KEYS: versions zset. Drops expired announcements, returns the live versions. */
const LIVE_VERSIONS = `${NOW_MS}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
`;

interface FreshnessCommands {
  fsPublishWatermark(key: string, watermarkMs: string): Promise<number>;
  fsWatermarkAge(key: string): Promise<number>;
  fsAnnounceVersion(key: string, version: string, ttlMs: string): Promise<1>;
  fsLiveVersions(key: string): Promise<string[]>;
}

function withFreshness(redis: RedisClient): RedisClient & FreshnessCommands {
  const r = redis as RedisClient & Partial<FreshnessCommands>;
  if (typeof r.fsWatermarkAge !== "function") {
    redis.defineCommand("fsPublishWatermark", { numberOfKeys: 1, lua: PUBLISH_WATERMARK });
    redis.defineCommand("fsWatermarkAge", { numberOfKeys: 1, lua: WATERMARK_AGE });
    redis.defineCommand("fsAnnounceVersion", { numberOfKeys: 1, lua: ANNOUNCE });
    redis.defineCommand("fsLiveVersions", { numberOfKeys: 1, lua: LIVE_VERSIONS });
  }
  return r as RedisClient & FreshnessCommands;
}

/** Invalidator: every committed change up to `watermarkRedisMs` (Redis clock) has been applied. Never moves back. */
export async function publishWatermark(redis: RedisClient, watermarkRedisMs: number): Promise<number> {
  return Number(await withFreshness(redis).fsPublishWatermark(WATERMARK_KEY, String(Math.floor(watermarkRedisMs))));
}

/** Catalog: the watermark's age in ms as Redis measures it; null if none was ever published. */
export async function readWatermarkAgeMs(redis: RedisClient): Promise<number | null> {
  const age = Number(await withFreshness(redis).fsWatermarkAge(WATERMARK_KEY));
  return age < 0 ? null : age;
}

/** Redis's clock in ms (for a producer converting DB commit times, bracketed by its own round trip). */
export async function redisNowMs(redis: RedisClient): Promise<number> {
  const [s, us] = await redis.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

/** Catalog: "I serve cache schema version `version`" for the next `ttlMs` (re-announce well within it). */
export async function announceSchemaVersion(redis: RedisClient, version: number, ttlMs: number): Promise<void> {
  await withFreshness(redis).fsAnnounceVersion(SCHEMA_VERSIONS_KEY, String(version), String(ttlMs));
}

/** Invalidator: the schema versions some catalog announced and whose announcement has not expired. */
export async function liveSchemaVersions(redis: RedisClient): Promise<number[]> {
  const members = await withFreshness(redis).fsLiveVersions(SCHEMA_VERSIONS_KEY);
  return members
    .map(Number)
    .filter((v) => Number.isInteger(v) && v > 0)
    .sort((a, b) => a - b);
}

/** Exposed for tests and operators' tooling (redis-cli); not for building other keys. */
export const FRESHNESS_KEYS = { watermark: WATERMARK_KEY, schemaVersions: SCHEMA_VERSIONS_KEY } as const;
