/**
 * The Lua half of the consistency protocol. Each script touches only the keys of one entity and
 * the bookkeeping keys of that entity's slot (keys.ts `slotKeys`, hash-tagged into the same slot),
 * and each runs atomically on the Redis server.
 *
 * Nothing a fill's safety depends on carries a Redis TTL (docs/architecture.md#failure-modes): under
 * a `volatile-*` maxmemory policy keys without a TTL are never evicted, so memory pressure can take
 * values and leases but never a fence or an incarnation marker. Fences are collected instead by
 * SWEEP_FENCES through the slot's sorted set of fence expiries.
 */

/** Lua: Redis's own clock in epoch ms (the lease time and the fill deadline are both on it). */
const NOW_MS = `local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

/**
 * Lua: the incarnation marker of this slot, created on first use. A restarted (or failed-over,
 * unpersisted) Redis has lost it, so a marker read before and one read after always differ.
 */
const INCARNATION = `local function incarnation(key)
  local inc = redis.call('GET', key)
  if inc then return inc end
  local t = redis.call('TIME')
  inc = t[1] .. '.' .. t[2] .. '.' .. tostring(math.random(1, 1000000000))
  redis.call('SET', key, inc)
  return inc
end
`;

/**
 * KEYS: value, lease, fence, incarnation. ARGV: leaseToken, leaseMs.
 * Returns {1, payload} on a hit; {2, redisNowMs, incarnation, fence} if the caller now holds the
 * lease and must fill (the time it took the lease on Redis's clock: its fill's deadline is counted
 * from it; the slot's incarnation, which the fill must find unchanged; the fence as it stood, which
 * a fill of "absent" is judged against); {3} if someone else holds it and the caller should wait.
 */
export const GET_OR_LEASE = `${NOW_MS}${INCARNATION}
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {2, now_ms(), incarnation(KEYS[4]), redis.call('GET', KEYS[3]) or '0'}
end
return {3}
`;

/**
 * KEYS: value, lease, fence, incarnation. ARGV: leaseToken, rowVersion, payload, ttlMs, deadlineMs,
 * incarnation, mode ("absent" for a fill of "no such row"). Set-if-lease-and-not-fenced. Refuses (returns 0) when:
 *  - Redis's clock is past deadlineMs (the lease time + the maximum fill age): the fill was held up
 *    on its way (a Redis stall, a partition) longer than the fence protecting it is guaranteed to live;
 *  - the slot's incarnation is not the one the lease was granted in: Redis restarted or failed over
 *    since, and lost the fences that would have refused this read;
 *  - the fence (version of the latest invalidation) is above the row version we read: our read
 *    raced a write and is stale, even if our lease expired meanwhile; a fill of "absent" passes the
 *    fence as it stood at lease time instead, and is refused if the fence is not exactly that any
 *    more (any invalidation since, an INSERT's included, or a fence swept or lowered);
 *  - another caller holds the lease (ours expired and was re-taken; they will fill).
 * A refused fill releases its own lease, so the readers waiting for it go on at once.
 * Otherwise writes the value with its TTL, releases our lease and returns 1.
 */
export const FILL = `${NOW_MS}
local function refuse()
  if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
  return 0
end
if now_ms() > tonumber(ARGV[5]) then return refuse() end
if redis.call('GET', KEYS[4]) ~= ARGV[6] then return refuse() end
local fence = redis.call('GET', KEYS[3])
if ARGV[7] == 'absent' then
  if (fence or '0') ~= ARGV[2] then return refuse() end
elseif fence and tonumber(fence) > tonumber(ARGV[2]) then
  return refuse()
end
local lease = redis.call('GET', KEYS[2])
if lease and lease ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
if lease then redis.call('DEL', KEYS[2]) end
return 1
`;

/**
 * KEYS: value, lease, fence, fence index (slot's sorted set). ARGV: changeVersion, fenceTtlMs.
 * Invalidate = delete, never update. The value is deleted unless it provably already contains
 * this change (its row version >= the change's version: versions only grow), which keeps replayed
 * or late events from evicting fresh entries. An unreadable value, and an "absent" marker (version
 * 0, entry.ts), are deleted. The fence only moves up, so an older event cannot lower it. The fence
 * has no TTL (memory pressure must not evict it); its expiry goes into the slot's index, where
 * SWEEP_FENCES collects it. Idempotent.
 * ARGV[3] (optional, '' = none): a delete fence value this change may replace even though it is
 * higher — the re-insert of a deleted id, when versions come from one sequence and so every version
 * of the deleted row is below the re-insert's (only the exact sentinel is replaced: a real version
 * is never lowered, so a replayed insert cannot undo a later update's fence).
 */
export const INVALIDATE = `${NOW_MS}
local v = redis.call('GET', KEYS[1])
if v then
  local ok, env = pcall(cjson.decode, v)
  local cached = ok and type(env) == 'table' and tonumber(env.version) or nil
  if (not cached) or cached < tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) end
end
redis.call('DEL', KEYS[2])
local fence = redis.call('GET', KEYS[3])
if (not fence) or tonumber(fence) < tonumber(ARGV[1]) or (ARGV[3] ~= '' and fence == ARGV[3]) then
  redis.call('SET', KEYS[3], ARGV[1])
else
  redis.call('PERSIST', KEYS[3])
end
redis.call('ZADD', KEYS[4], now_ms() + tonumber(ARGV[2]), KEYS[3])
return 1
`;

/**
 * KEYS: fence index of one slot. ARGV: limit. Deletes up to `limit` fences whose expiry passed
 * (a fence raised again since has a later score and stays). Returns how many it deleted.
 */
export const SWEEP_FENCES = `${NOW_MS}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(), 'LIMIT', 0, tonumber(ARGV[1]))
for _, fence in ipairs(due) do
  redis.call('DEL', fence)
  redis.call('ZREM', KEYS[1], fence)
end
return #due
`;

/** KEYS: lease. ARGV: leaseToken. Releases the lease only if we still hold it. */
export const RELEASE_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/**
 * KEYS: lease, fence, incarnation. ARGV: leaseToken, leaseMs. {redisNowMs, incarnation, fence} if
 * the caller now holds the lease (early refresh; as GET_OR_LEASE), else {0}.
 */
export const TRY_LEASE = `${NOW_MS}${INCARNATION}
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {now_ms(), incarnation(KEYS[3]), redis.call('GET', KEYS[2]) or '0'}
end
return {0}
`;

/** The scripts as typed commands on a client (EVALSHA with automatic EVAL fallback). */
export interface ScriptCommands {
  fsGetOrLease(
    value: string,
    lease: string,
    fence: string,
    incarnation: string,
    token: string,
    leaseMs: string,
  ): Promise<[1, string] | [2, number, string, string] | [3]>;
  fsFill(
    value: string,
    lease: string,
    fence: string,
    incarnation: string,
    token: string,
    version: string,
    payload: string,
    ttlMs: string,
    deadlineMs: string,
    expectedIncarnation: string,
    mode: "value" | "absent",
  ): Promise<0 | 1>;
  fsInvalidate(
    value: string,
    lease: string,
    fence: string,
    fenceIndex: string,
    version: string,
    fenceTtlMs: string,
    replacesDeleteFence: string,
  ): Promise<1>;
  fsSweepFences(fenceIndex: string, limit: string): Promise<number>;
  fsReleaseLease(lease: string, token: string): Promise<0 | 1>;
  fsTryLease(lease: string, fence: string, incarnation: string, token: string, leaseMs: string): Promise<[number, string, string] | [0]>;
}

/** Registers the scripts on an ioredis client once; safe to call repeatedly. */
export function withScripts<R extends import("./redis-client.ts").RedisClient>(redis: R): R & ScriptCommands {
  const r = redis as R & Partial<ScriptCommands>;
  if (typeof r.fsSweepFences !== "function") {
    redis.defineCommand("fsGetOrLease", { numberOfKeys: 4, lua: GET_OR_LEASE });
    redis.defineCommand("fsFill", { numberOfKeys: 4, lua: FILL });
    redis.defineCommand("fsInvalidate", { numberOfKeys: 4, lua: INVALIDATE });
    redis.defineCommand("fsSweepFences", { numberOfKeys: 1, lua: SWEEP_FENCES });
    redis.defineCommand("fsReleaseLease", { numberOfKeys: 1, lua: RELEASE_LEASE });
    redis.defineCommand("fsTryLease", { numberOfKeys: 3, lua: TRY_LEASE });
  }
  return r as R & ScriptCommands;
}
