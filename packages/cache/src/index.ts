export { invalidateEntity } from "./invalidate.ts";
export { type EntityKeys, entityKeys, KEY_PREFIX } from "./keys.ts";
export { jitteredTtlMs } from "./ttl.ts";
export { type CacheEvent, type CacheRead, type CacheSource, VersionedCache, type VersionedCacheOptions } from "./versioned-cache.ts";
