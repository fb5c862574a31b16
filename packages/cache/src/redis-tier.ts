import { type CircuitBreakerPolicy, ConsecutiveBreaker, circuitBreaker, handleAll } from "cockatiel";
import type { EntityKeys } from "./keys.ts";
import type { RedisClient } from "./redis-client.ts";
import { type ScriptCommands, withScripts } from "./scripts.ts";

/** `leasedAtMs`: when the lease was taken, on Redis's clock (a fill's deadline counts from it). */
export type LeaseReply = { kind: "hit"; payload: string } | { kind: "leased"; leasedAtMs: number } | { kind: "wait" };

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
    const reply = await this.call(() => this.redis.fsGetOrLease(k.value, k.lease, token, String(leaseMs)));
    if (reply[0] === 1) return { kind: "hit", payload: reply[1] };
    return reply[0] === 2 ? { kind: "leased", leasedAtMs: reply[1] } : { kind: "wait" };
  }

  /** When the lease was taken (Redis's clock, ms) if it was free and is now ours (a background refresh), else null. */
  async tryLease(k: EntityKeys, token: string, leaseMs: number): Promise<number | null> {
    const leasedAt = await this.call(() => this.redis.fsTryLease(k.lease, token, String(leaseMs)));
    return leasedAt > 0 ? leasedAt : null;
  }

  /**
   * Set-if-lease-and-not-fenced, executed only before `deadlineMs` on Redis's clock; false when
   * refused (our read raced a write, our lease was re-taken, or the fill arrived too late).
   */
  async fill(k: EntityKeys, token: string, version: number, payload: string, ttlMs: number, deadlineMs: number): Promise<boolean> {
    return (
      (await this.call(() =>
        this.redis.fsFill(k.value, k.lease, k.fence, token, String(version), payload, String(ttlMs), String(deadlineMs)),
      )) === 1
    );
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
