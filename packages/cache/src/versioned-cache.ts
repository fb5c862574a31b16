import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { type EntityKeys, entityKeys } from "./keys.ts";
import { type ScriptCommands, withScripts } from "./scripts.ts";
import { jitteredTtlMs } from "./ttl.ts";

/** How a read was served; becomes the `X-Cache` response header. */
export type CacheSource = "HIT" | "MISS" | "BYPASS";

export interface CacheRead<T> {
  value: T | null;
  source: CacheSource;
  /** Milliseconds since the value was read from Postgres. */
  ageMs: number;
}

export type CacheEvent =
  | "hit"
  | "miss"
  | "fill"
  | "fill_refused"
  | "lease_wait"
  | "lease_wait_timeout"
  | "coalesced"
  | "bypass"
  | "invalid_payload";

export interface VersionedCacheOptions<T> {
  redis: Redis;
  /** Entity name in the key, e.g. "product". */
  entity: string;
  schemaVersion: number;
  ttlMs: number;
  /** Fractional TTL jitter, 0.05 = +/- 5 %. */
  jitter?: number;
  leaseMs: number;
  /** How long a reader that lost the lease race waits for the holder's fill before reading the DB itself. */
  waitForFillMs?: number;
  /**
   * A fill whose DB read took longer than this is dropped: the fence protecting it
   * has a TTL, and a read that slow may predate a fence that has already expired.
   */
  maxFillAgeMs?: number;
  versionOf(value: T): number;
  /** The next instant the value becomes wrong without any write (epoch ms), or null. */
  validUntilMs(value: T): number | null;
  /** Guards against payloads of another code version: invalid = miss, never served. */
  isValid(value: unknown): value is T;
  onEvent?(event: CacheEvent): void;
  now?: () => number;
}

/** What is stored in Redis. `version` sits at the top level for the INVALIDATE script. */
interface Envelope<T> {
  version: number;
  storedAt: number;
  value: T;
}

/**
 * Cache-aside over Redis for versioned rows, with leases (one DB read per key per
 * miss across the fleet), version fences (no stale fill after an invalidation),
 * jittered TTL capped at validUntil, and in-process coalescing of concurrent misses.
 * Redis failures degrade to direct DB reads (`BYPASS`), never to errors.
 */
export class VersionedCache<T> {
  private readonly redis: Redis & ScriptCommands;
  private readonly inflight = new Map<string, Promise<CacheRead<T>>>();
  private readonly opts: Required<Omit<VersionedCacheOptions<T>, "onEvent">> & Pick<VersionedCacheOptions<T>, "onEvent">;

  constructor(options: VersionedCacheOptions<T>) {
    this.opts = { jitter: 0.05, waitForFillMs: 300, maxFillAgeMs: 10_000, now: Date.now, ...options };
    this.redis = withScripts(options.redis);
  }

  keys(id: string | number): EntityKeys {
    return entityKeys(this.opts.schemaVersion, this.opts.entity, id);
  }

  /** Read through the cache; concurrent calls for one id in this process share one promise. */
  get(id: string | number, load: () => Promise<T | null>): Promise<CacheRead<T>> {
    const k = String(id);
    const pending = this.inflight.get(k);
    if (pending) {
      this.emit("coalesced");
      return pending;
    }
    const p = this.read(this.keys(id), load).finally(() => this.inflight.delete(k));
    this.inflight.set(k, p);
    return p;
  }

  private async read(k: EntityKeys, load: () => Promise<T | null>): Promise<CacheRead<T>> {
    const token = randomUUID();
    let reply: [1, string] | [2] | [3];
    try {
      reply = await this.redis.fsGetOrLease(k.value, k.lease, token, String(this.opts.leaseMs));
    } catch {
      return this.bypass(load);
    }
    if (reply[0] === 1) {
      const hit = this.decode(reply[1]);
      if (hit) {
        this.emit("hit");
        return hit;
      }
      // Unreadable payload (older schema or corruption): drop it and read fresh.
      this.emit("invalid_payload");
      await this.redis.del(k.value).catch(() => {});
      return this.loadWithoutFill(load);
    }
    if (reply[0] === 2) return this.fillAsLeaseHolder(k, token, load);
    return this.waitForFill(k, load);
  }

  private async fillAsLeaseHolder(k: EntityKeys, token: string, load: () => Promise<T | null>): Promise<CacheRead<T>> {
    this.emit("miss");
    const startedAt = this.opts.now();
    let value: T | null;
    try {
      value = await load();
    } catch (err) {
      // Let the waiters go to the DB themselves rather than wait out our lease.
      await this.redis.fsReleaseLease(k.lease, token).catch(() => {});
      throw err;
    }
    const now = this.opts.now();
    const ttlMs = value === null ? 0 : this.ttlFor(value, now);
    if (value === null || ttlMs === 0 || now - startedAt > this.opts.maxFillAgeMs) {
      await this.redis.fsReleaseLease(k.lease, token).catch(() => {});
      return { value, source: "MISS", ageMs: 0 };
    }
    const version = this.opts.versionOf(value);
    const envelope: Envelope<T> = { version, storedAt: startedAt, value };
    try {
      const filled = await this.redis.fsFill(k.value, k.lease, k.fence, token, String(version), JSON.stringify(envelope), String(ttlMs));
      this.emit(filled === 1 ? "fill" : "fill_refused");
    } catch {
      // The value we read is still the DB's answer; only the fill failed.
    }
    return { value, source: "MISS", ageMs: now - startedAt };
  }

  private async waitForFill(k: EntityKeys, load: () => Promise<T | null>): Promise<CacheRead<T>> {
    this.emit("lease_wait");
    const deadline = this.opts.now() + this.opts.waitForFillMs;
    let delay = 2;
    while (this.opts.now() < deadline) {
      await sleep(delay);
      delay = Math.min(delay * 2, 25);
      let raw: string | null;
      try {
        raw = await this.redis.get(k.value);
      } catch {
        return this.bypass(load);
      }
      const hit = raw === null ? null : this.decode(raw);
      if (hit) {
        this.emit("hit");
        return hit;
      }
    }
    this.emit("lease_wait_timeout");
    return this.loadWithoutFill(load);
  }

  private async loadWithoutFill(load: () => Promise<T | null>): Promise<CacheRead<T>> {
    return { value: await load(), source: "MISS", ageMs: 0 };
  }

  private async bypass(load: () => Promise<T | null>): Promise<CacheRead<T>> {
    this.emit("bypass");
    return { value: await load(), source: "BYPASS", ageMs: 0 };
  }

  private decode(raw: string): CacheRead<T> | null {
    try {
      const env = JSON.parse(raw) as Partial<Envelope<unknown>>;
      if (typeof env.storedAt !== "number" || !this.opts.isValid(env.value)) return null;
      const validUntil = this.opts.validUntilMs(env.value);
      const now = this.opts.now();
      // Belt and braces: the TTL is already capped at validUntil.
      if (validUntil !== null && validUntil <= now) return null;
      return { value: env.value, source: "HIT", ageMs: Math.max(0, now - env.storedAt) };
    } catch {
      return null;
    }
  }

  private ttlFor(value: T, now: number): number {
    return jitteredTtlMs({
      baseMs: this.opts.ttlMs,
      jitter: this.opts.jitter,
      nowMs: now,
      validUntilMs: this.opts.validUntilMs(value),
    });
  }

  private emit(event: CacheEvent): void {
    this.opts.onEvent?.(event);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
