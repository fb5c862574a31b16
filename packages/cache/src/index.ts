export {
  type CacheEvent,
  type CacheMode,
  type CacheRead,
  type CacheSource,
  createVersionedCache,
  type SuppressedOperation,
  type VersionedCache,
  type VersionedCacheOptions,
} from "./cache.ts";
export { type CacheEntry, type EntryRules, encodeEntry, parseEntry } from "./entry.ts";
export {
  announceSchemaVersion,
  FRESHNESS_KEYS,
  type FreshnessGate,
  type FreshnessMode,
  FreshnessMonitor,
  type FreshnessMonitorOptions,
  liveSchemaVersions,
  publishWatermark,
  readFreshness,
  readWatermarkAgeMs,
  recordPartitionHeartbeat,
  recordSchemaCoverage,
  redisNowMs,
} from "./freshness.ts";
export { invalidateEntity, sweepFences } from "./invalidate.ts";
export { demandKeys, type EntityKeys, entityKeys, keyPrefix, parseKey, scanPattern } from "./keys.ts";
export { type L1Entry, L1Store } from "./l1.ts";
export { type CanaryOptions, L1Invalidations } from "./l1-invalidations.ts";
export { createRedisClient, masterNodes, type RedisClient, type RedisClientOptions, redisReady } from "./redis-client.ts";
export { type ReserveResult, StockGate, type StockGateOptions } from "./stock-gate.ts";
export { jitteredTtlMs } from "./ttl.ts";
