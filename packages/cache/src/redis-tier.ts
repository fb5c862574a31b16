import { type CircuitBreakerPolicy, ConsecutiveBreaker, circuitBreaker, handleAll } from "cockatiel";
import { type EntityKeys, slotKeys } from "./keys.ts";
import type { RedisClient } from "./redis-client.ts";
import { type ScriptCommands, withScripts } from "./scripts.ts";

/**
 * A lease we hold: its token; when Redis granted it (Redis's clock, ms: a fill's deadline counts from
 * it); the slot's incarnation then (a fill in another incarnation is refused); the fence then (the
 * version a fill of "absent" is judged by).
 */
export type Lease = { token: string; at: number; incarnation: string; fence: string };

export type LeaseReply = { kind: "hit"; payload: string } | { kind: "leased"; lease: Lease } | { kind: "wait" };

export interface BreakerOptions {
  /** Opens after this many consecutive failures… */
  consecutiveFailures?: number;
  /** …and lets a probe through again after this long. */
  halfOpenAfterMs?: number;
}

/**
 * The Redis side of the cache: every call goes through one circuit breaker (once open, readers
 * bypass Redis at once instead of each waiting out a timeout) and the protocol's atomic steps
 * are the Lua scripts of scripts.ts. Payloads are opaque strings here (entry.ts owns them).
 */
export class RedisTier {
  private readonly redis: RedisClient & ScriptCommands;
  private readonly breaker: CircuitBreakerPolicy;

  constructor(redis: RedisClient, breaker: BreakerOptions = {}) {
    this.redis = withScripts(redis);
    this.breaker = circuitBreaker(handleAll, {
      halfOpenAfter: breaker.halfOpenAfterMs ?? 1_000,
      breaker: new ConsecutiveBreaker(breaker.consecutiveFailures ?? 5),
    });
  }

  /** "closed" | "open" | "halfOpen" | "isolated": for /readyz and tests. */
  get circuit(): string {
    return ["closed", "open", "halfOpen", "isolated"][this.breaker.state] ?? "unknown";
  }

  /** The value, or the lease (the caller must fill), or "someone else holds the lease: wait". */
  async getOrLease(k: EntityKeys, token: string, leaseMs: number): Promise<LeaseReply> {
    const inc = slotKeys(k.value).incarnation;
    const reply = await this.call(() => this.redis.fsGetOrLease(k.value, k.lease, k.fence, inc, token, String(leaseMs)));
    if (reply[0] === 1) return { kind: "hit", payload: reply[1] };
    if (reply[0] === 2) return { kind: "leased", lease: { token, at: reply[1], incarnation: reply[2], fence: String(reply[3]) } };
    return { kind: "wait" };
  }

  /** The lease if it was free and is now ours (a background refresh), else null. */
  async tryLease(k: EntityKeys, token: string, leaseMs: number): Promise<Lease | null> {
    const inc = slotKeys(k.value).incarnation;
    const reply = await this.call(() => this.redis.fsTryLease(k.lease, k.fence, inc, token, String(leaseMs)));
    return reply[0] > 0 ? { token, at: reply[0], incarnation: reply[1] as string, fence: String(reply[2]) } : null;
  }

  /**
   * Set-if-lease-and-not-fenced, executed only before `deadlineMs` on Redis's clock and in the
   * lease's incarnation; false when refused (our read raced a write, our lease was re-taken, Redis
   * restarted meanwhile, or the fill arrived too late). A refused fill releases its lease.
   */
  /** `version` null: a fill of "no such row", judged by the fence being exactly as the lease saw it. */
  async fill(k: EntityKeys, lease: Lease, version: number | null, payload: string, ttlMs: number, deadlineMs: number): Promise<boolean> {
    const inc = slotKeys(k.value).incarnation;
    return (
      (await this.call(() =>
        this.redis.fsFill(
          k.value,
          k.lease,
          k.fence,
          inc,
          lease.token,
          version === null ? lease.fence : String(version),
          payload,
          String(ttlMs),
          String(deadlineMs),
          lease.incarnation,
          version === null ? "absent" : "value",
        ),
      )) === 1
    );
  }

  /** The invalidator's eviction, done by a catalog that found a cached value older than Postgres. */
  async invalidate(k: EntityKeys, version: number, fenceTtlMs: number): Promise<void> {
    const fences = slotKeys(k.value).fences;
    await this.call(() => this.redis.fsInvalidate(k.value, k.lease, k.fence, fences, String(version), String(fenceTtlMs), ""));
  }

  /** Lets the waiters go (they read the DB themselves) instead of waiting out our lease. */
  async releaseLease(k: EntityKeys, token: string): Promise<void> {
    await this.call(() => this.redis.fsReleaseLease(k.lease, token));
  }

  async get(key: string): Promise<string | null> {
    return this.call(() => this.redis.get(key));
  }

  /** Plain SET with a TTL, outside the protocol (the plain cache-aside baseline). */
  async set(key: string, payload: string, ttlMs: number): Promise<void> {
    await this.call(() => this.redis.set(key, payload, "PX", ttlMs));
  }

  async delete(key: string): Promise<void> {
    await this.call(() => this.redis.del(key));
  }

  private call<R>(fn: () => Promise<R>): Promise<R> {
    return this.breaker.execute(fn);
  }
}
