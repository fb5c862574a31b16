export { invalidateEntity } from "./invalidate.ts";
export { type EntityKeys, entityKeys, KEY_PREFIX } from "./keys.ts";
export { type L1Entry, L1Store } from "./l1.ts";
export { L1Invalidations } from "./l1-invalidations.ts";
export { createRedisClient, masterNodes, type RedisClient, type RedisClientOptions, redisReady } from "./redis-client.ts";
export { type ReserveResult, StockGate, type StockGateOptions } from "./stock-gate.ts";
export { jitteredTtlMs } from "./ttl.ts";
export { type CacheEvent, type CacheRead, type CacheSource, VersionedCache, type VersionedCacheOptions } from "./versioned-cache.ts";
