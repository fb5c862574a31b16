/**
 * The Lua half of the consistency protocol. Each script touches only the keys of
 * one entity (same hash slot), and each runs atomically on the Redis server.
 */

/** Lua: Redis's own clock in epoch ms (the lease time and the fill deadline are both on it). */
const NOW_MS = `local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

/**
 * KEYS: value, lease. ARGV: leaseToken, leaseMs.
 * Returns {1, payload} on a hit, {2, redisNowMs} if the caller now holds the lease and
 * must fill (the time it took the lease, on Redis's clock: its fill's deadline is counted
 * from it), {3} if someone else holds it and the caller should wait for their fill.
 */
export const GET_OR_LEASE = `${NOW_MS}
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, now_ms()} end
return {3}
`;

/**
 * KEYS: value, lease, fence. ARGV: leaseToken, rowVersion, payload, ttlMs, deadlineMs.
 * Set-if-lease-and-not-fenced. Refuses (returns 0) when:
 *  - Redis's clock is past deadlineMs (the lease time + the maximum fill age): the fill
 *    was held up on its way (a Redis stall, a partition) for longer than the fence that
 *    protects it is guaranteed to live, so a fence that refused it may have expired;
 *  - the fence (version of the latest invalidation) is above the row version we
 *    read: our read raced a write and is stale, even if our lease expired meanwhile;
 *  - another caller holds the lease (ours expired and was re-taken; they will fill).
 * Otherwise writes the value with its TTL, releases our lease and returns 1.
 */
export const FILL = `${NOW_MS}
if now_ms() > tonumber(ARGV[5]) then return 0 end
local fence = redis.call('GET', KEYS[3])
if fence and tonumber(fence) > tonumber(ARGV[2]) then return 0 end
local lease = redis.call('GET', KEYS[2])
if lease and lease ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
if lease then redis.call('DEL', KEYS[2]) end
return 1
`;

/**
 * KEYS: value, lease, fence. ARGV: changeVersion, fenceTtlMs.
 * Invalidate = delete, never update. The value is deleted unless it provably
 * already contains this change (its row version >= the change's version: versions
 * only grow), which keeps replayed or late events (e.g. a row's insert arriving
 * after its first fill) from evicting fresh entries. An unreadable value is deleted.
 * The fence only moves up, so an older event cannot lower it. Idempotent.
 */
export const INVALIDATE = `
local v = redis.call('GET', KEYS[1])
if v then
  local ok, env = pcall(cjson.decode, v)
  local cached = ok and type(env) == 'table' and tonumber(env.version) or nil
  if (not cached) or cached < tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) end
end
redis.call('DEL', KEYS[2])
local fence = redis.call('GET', KEYS[3])
if (not fence) or tonumber(fence) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
else
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return 1
`;

/** KEYS: lease. ARGV: leaseToken. Releases the lease only if we still hold it. */
export const RELEASE_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/**
 * KEYS: lease. ARGV: leaseToken, leaseMs. Redis's clock in ms if the caller now holds the
 * lease (early refresh; its fill's deadline is counted from it), else 0.
 */
export const TRY_LEASE = `${NOW_MS}
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return now_ms() end
return 0
`;

/** The scripts as typed commands on a client (EVALSHA with automatic EVAL fallback). */
export interface ScriptCommands {
  fsGetOrLease(value: string, lease: string, token: string, leaseMs: string): Promise<[1, string] | [2, number] | [3]>;
  fsFill(
    value: string,
    lease: string,
    fence: string,
    token: string,
    version: string,
    payload: string,
    ttlMs: string,
    deadlineMs: string,
  ): Promise<0 | 1>;
  fsInvalidate(value: string, lease: string, fence: string, version: string, fenceTtlMs: string): Promise<1>;
  fsReleaseLease(lease: string, token: string): Promise<0 | 1>;
  fsTryLease(lease: string, token: string, leaseMs: string): Promise<number>;
}

/** Registers the scripts on an ioredis client once; safe to call repeatedly. */
export function withScripts<R extends import("./redis-client.ts").RedisClient>(redis: R): R & ScriptCommands {
  const r = redis as R & Partial<ScriptCommands>;
  if (typeof r.fsFill !== "function") {
    redis.defineCommand("fsGetOrLease", { numberOfKeys: 2, lua: GET_OR_LEASE });
    redis.defineCommand("fsFill", { numberOfKeys: 3, lua: FILL });
    redis.defineCommand("fsInvalidate", { numberOfKeys: 3, lua: INVALIDATE });
    redis.defineCommand("fsReleaseLease", { numberOfKeys: 1, lua: RELEASE_LEASE });
    redis.defineCommand("fsTryLease", { numberOfKeys: 1, lua: TRY_LEASE });
  }
  return r as R & ScriptCommands;
}
