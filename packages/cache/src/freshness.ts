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
/**
 * The schema versions the invalidator covers (evicts for every change, and whose keys from before it
 * did were retired): member = version, score = expiry on Redis's clock, renewed every refresh. Member
 * "*" (long expiry) says a coverage-recording invalidator runs. Hash-tagged with the watermark key's
 * name so that the catalog's one read script may touch both in a cluster (same slot).
 */
const COVERED_KEY = `{${WATERMARK_KEY}}:covered`;
const COVERAGE_RECORDED = "*";
/** Per topic: partition -> DB commit ms of the last heartbeat applied there (the invalidator's input). */
const HEARTBEATS_KEY_PREFIX = "catalog:freshness:heartbeats:";

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

/**
 * KEYS: watermark, covered zset. ARGV: schema versions the reader serves. Returns {age} ({-1}: never
 * published), followed by each given version not covered now. Coverage is only checked while an
 * invalidator that records it runs ("*" not expired): a stand-in producer of the watermark, or an
 * invalidator built before coverage existed, records none.
 */
const FRESHNESS = `${NOW_MS}
local w = tonumber(redis.call('GET', KEYS[1]) or '-1')
if w < 0 then return {-1} end
local out = {now - w}
if #ARGV > 0 and tonumber(redis.call('ZSCORE', KEYS[2], '${COVERAGE_RECORDED}') or '0') > now then
  for i = 1, #ARGV do
    if tonumber(redis.call('ZSCORE', KEYS[2], ARGV[i]) or '0') <= now then out[#out + 1] = ARGV[i] end
  end
end
return out
`;

/** KEYS: covered zset. ARGV: ttlMs, recordedTtlMs, then versions to cover (until now + ttlMs), "-", versions to drop. */
const COVER = `${NOW_MS}
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), '${COVERAGE_RECORDED}')
local drop = false
for i = 3, #ARGV do
  if ARGV[i] == '-' then drop = true
  elseif drop then redis.call('ZREM', KEYS[1], ARGV[i])
  else redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i]) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return 1
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

/** KEYS: heartbeats hash. ARGV: partition, db ms. Moves the partition's entry only forward; returns the hash. */
const RECORD_HEARTBEAT = `
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if tonumber(ARGV[2]) > cur then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return redis.call('HGETALL', KEYS[1])
`;

interface FreshnessCommands {
  fsRecordHeartbeat(key: string, partition: string, dbMs: string): Promise<string[]>;
  fsPublishWatermark(key: string, watermarkMs: string): Promise<number>;
  fsFreshness(watermarkKey: string, coveredKey: string, ...versions: string[]): Promise<(number | string)[]>;
  fsCover(key: string, ...args: string[]): Promise<1>;
  fsAnnounceVersion(key: string, version: string, ttlMs: string): Promise<1>;
  fsLiveVersions(key: string): Promise<string[]>;
}

function withFreshness(redis: RedisClient): RedisClient & FreshnessCommands {
  const r = redis as RedisClient & Partial<FreshnessCommands>;
  if (typeof r.fsFreshness !== "function") {
    redis.defineCommand("fsFreshness", { numberOfKeys: 2, lua: FRESHNESS });
    redis.defineCommand("fsCover", { numberOfKeys: 1, lua: COVER });
    redis.defineCommand("fsPublishWatermark", { numberOfKeys: 1, lua: PUBLISH_WATERMARK });
    redis.defineCommand("fsAnnounceVersion", { numberOfKeys: 1, lua: ANNOUNCE });
    redis.defineCommand("fsLiveVersions", { numberOfKeys: 1, lua: LIVE_VERSIONS });
    redis.defineCommand("fsRecordHeartbeat", { numberOfKeys: 1, lua: RECORD_HEARTBEAT });
  }
  return r as RedisClient & FreshnessCommands;
}

/** Invalidator: every committed change up to `watermarkRedisMs` (Redis clock) has been applied. Never moves back. */
export async function publishWatermark(redis: RedisClient, watermarkRedisMs: number): Promise<number> {
  return Number(await withFreshness(redis).fsPublishWatermark(WATERMARK_KEY, String(Math.floor(watermarkRedisMs))));
}

/** Catalog: the watermark's age in ms as Redis measures it; null if none was ever published. */
export async function readWatermarkAgeMs(redis: RedisClient): Promise<number | null> {
  return (await readFreshness(redis)).ageMs;
}

/**
 * Catalog: the watermark's age (null: never published) and which of `schemaVersions` the
 * invalidator does not cover yet, in one script (one round trip). A watermark says nothing about a
 * version not covered: its keys may predate the evictions (docs/architecture.md#freshness).
 */
export async function readFreshness(
  redis: RedisClient,
  schemaVersions: readonly number[] = [],
): Promise<{ ageMs: number | null; uncovered: number[] }> {
  const [age, ...uncovered] = await withFreshness(redis).fsFreshness(WATERMARK_KEY, COVERED_KEY, ...schemaVersions.map(String));
  const a = Number(age);
  return { ageMs: a < 0 ? null : a, uncovered: uncovered.map(Number) };
}

/**
 * Invalidator: it covers `versions` for the next `ttlMs` (Redis clock; renew well within it) and no
 * longer covers `dropped`. Covered = every change is evicted for it and its keys from before that
 * were retired. Also records for `recordedTtlMs` that coverage is recorded at all (catalogs check it).
 */
export async function recordSchemaCoverage(
  redis: RedisClient,
  o: { versions: readonly number[]; dropped?: readonly number[]; ttlMs: number; recordedTtlMs?: number },
): Promise<void> {
  const recorded = Math.max(o.recordedTtlMs ?? 60_000, o.ttlMs);
  await withFreshness(redis).fsCover(
    COVERED_KEY,
    String(o.ttlMs),
    String(recorded),
    ...o.versions.map(String),
    "-",
    ...(o.dropped ?? []).map(String),
  );
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

/**
 * Invalidator: a heartbeat committed at `dbMs` (DB clock) was applied on `partition` of `topic`,
 * after every message before it. Kept per partition in Redis so that several invalidators of one
 * consumer group (each owning some partitions) combine; returns every partition's entry.
 */
export async function recordPartitionHeartbeat(
  redis: RedisClient,
  topic: string,
  partition: number,
  dbMs: number,
): Promise<Map<number, number>> {
  const flat = await withFreshness(redis).fsRecordHeartbeat(HEARTBEATS_KEY_PREFIX + topic, String(partition), String(Math.floor(dbMs)));
  const out = new Map<number, number>();
  for (let i = 0; i + 1 < flat.length; i += 2) out.set(Number(flat[i]), Number(flat[i + 1]));
  return out;
}

/** Exposed for tests and operators' tooling (redis-cli); not for building other keys. */
export const FRESHNESS_KEYS = { watermark: WATERMARK_KEY, schemaVersions: SCHEMA_VERSIONS_KEY, covered: COVERED_KEY } as const;

/** "trusting": invalidations are believed (normal); "revalidating": every served key is checked against Postgres. */
export type FreshnessMode = "trusting" | "revalidating";

/** What the cache reads on every hit: a plain field, kept current by the monitor's timers (no work per hit). */
export interface FreshnessGate {
  readonly trusted: boolean;
}

export interface FreshnessMonitorOptions {
  redis: RedisClient;
  /** Δ: a watermark at least this old means invalidations may be missing. */
  deltaMs: number;
  /** How often the watermark is read (default 150 ms). */
  pollMs?: number;
  /** A read that has not answered in this long counts as failed (default: pollMs). */
  timeoutMs?: number;
  /**
   * A watermark never published (no producer, e.g. a development stack without it, or a Redis that
   * lost it): "old" (default, safe: revalidate everything) or "fresh" (trust invalidations blindly).
   */
  unpublished?: "old" | "fresh";
  /** Cache schema versions to announce while running (the invalidator evicts every announced one). */
  announce?: { schemaVersions: readonly number[]; ttlMs?: number; everyMs?: number };
  /**
   * Versions the invalidator must cover before the watermark is believed (default: the announced
   * ones): until it retired a version's keys, a fresh watermark says nothing about them.
   */
  coveredSchemaVersions?: readonly number[];
  /** Once per mode change, with the age that caused it (null: unknown). */
  onModeChange?(mode: FreshnessMode, ageMs: number | null): void;
  onError?(err: unknown): void;
}

/**
 * The catalog's view of the watermark (docs/architecture.md#cache-protocol): polled in the background,
 * aged between polls on this process's monotonic clock, and turned into one boolean the hit path reads.
 *
 * A poll that starts at monotonic t0 and gets age `a` (measured by Redis in the script, at some
 * instant >= t0) proves the watermark was at most `a + (now - t0)` old at any later `now`; so trust
 * lasts until t0 + (Δ - a) and ends by a timer unless a later poll extends it. A poll that fails or
 * times out extends nothing: an unreadable watermark ages like an old one.
 */
export class FreshnessMonitor implements FreshnessGate {
  trusted = false;
  private readonly o: Required<Omit<FreshnessMonitorOptions, "announce" | "coveredSchemaVersions" | "onModeChange" | "onError">> &
    FreshnessMonitorOptions;
  private readonly mustCover: readonly number[];
  private lastUncovered: readonly number[] = [];
  /** Last successful poll: the age Redis reported and the monotonic time the poll started. */
  private lastAge: number | null = null;
  private lastPollStart = 0;
  private published = false;
  private expiry: NodeJS.Timeout | null = null;
  private poller: NodeJS.Timeout | null = null;
  private announcer: NodeJS.Timeout | null = null;
  private stopped = false;
  private mode: FreshnessMode | null = null;

  constructor(options: FreshnessMonitorOptions) {
    this.o = { pollMs: 150, timeoutMs: options.pollMs ?? 150, unpublished: "old", ...options };
    this.mustCover = options.coveredSchemaVersions ?? options.announce?.schemaVersions ?? [];
  }

  /** The versions the last successful poll found not covered by the invalidator (trust waits for them). */
  get uncoveredSchemaVersions(): readonly number[] {
    return this.lastUncovered;
  }

  /** The current estimate of the watermark's age (ms); null while never read, or never published. */
  get ageMs(): number | null {
    return this.lastAge === null ? null : this.lastAge + (performance.now() - this.lastPollStart);
  }

  get currentMode(): FreshnessMode {
    return this.trusted ? "trusting" : "revalidating";
  }

  /** Starts polling (the first poll is awaited, so the mode is known when this resolves) and announcing. */
  async start(): Promise<void> {
    await this.poll();
    if (this.mode === null) this.setTrusted(false); // the first poll failed: old until one succeeds
    this.schedulePoll();
    const a = this.o.announce;
    if (a) {
      const ttlMs = a.ttlMs ?? 10_000;
      const announce = () => {
        for (const v of a.schemaVersions) {
          void withTimeout(announceSchemaVersion(this.o.redis, v, ttlMs), this.o.timeoutMs * 4).catch((err) => this.o.onError?.(err));
        }
      };
      announce();
      this.announcer = setInterval(announce, a.everyMs ?? Math.max(100, Math.floor(ttlMs / 4))).unref();
    }
  }

  stop(): void {
    this.stopped = true;
    for (const t of [this.poller, this.expiry]) if (t) clearTimeout(t);
    if (this.announcer) clearInterval(this.announcer);
  }

  private schedulePoll(): void {
    if (this.stopped) return;
    this.poller = setTimeout(() => void this.poll().finally(() => this.schedulePoll()), this.o.pollMs).unref();
  }

  private async poll(): Promise<void> {
    const t0 = performance.now();
    let age: number | null;
    let uncovered: number[];
    try {
      ({ ageMs: age, uncovered } = await withTimeout(readFreshness(this.o.redis, this.mustCover), this.o.timeoutMs));
    } catch (err) {
      this.o.onError?.(err);
      return; // nothing extended: the expiry timer ends trust on time
    }
    if (age === null) {
      this.published = false;
      this.lastAge = null;
      this.setTrusted(this.o.unpublished === "fresh");
      return;
    }
    this.published = true;
    this.lastAge = Math.max(0, age);
    this.lastPollStart = t0;
    this.lastUncovered = uncovered;
    const until = t0 + this.o.deltaMs - this.lastAge;
    // A version not covered yet: its keys may predate the evictions, whatever the watermark says.
    if (uncovered.length > 0 || until <= performance.now()) {
      this.setTrusted(false);
      return;
    }
    // The latest poll's bound wins (also when shorter: the watermark key may have been lost and re-published).
    if (this.expiry) clearTimeout(this.expiry);
    this.expiry = setTimeout(() => this.setTrusted(false), until - performance.now()).unref();
    this.setTrusted(true);
  }

  /** Whether a watermark was ever seen (false: no producer, or Redis lost it). */
  get isPublished(): boolean {
    return this.published;
  }

  private setTrusted(trusted: boolean): void {
    this.trusted = trusted;
    if (!trusted && this.expiry) {
      clearTimeout(this.expiry);
      this.expiry = null;
    }
    const mode: FreshnessMode = trusted ? "trusting" : "revalidating";
    if (mode !== this.mode) {
      this.mode = mode;
      this.o.onModeChange?.(mode, this.ageMs);
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`redis did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
