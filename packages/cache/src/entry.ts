import { jitteredTtlMs } from "./ttl.ts";

/**
 * The stored format of a cached entry, owned here and nowhere else: what is written to Redis,
 * how it is read back, when it is logically expired, when it is refreshed early, and how long
 * Redis keeps it past its expiry (docs/architecture.md#cache-protocol). Every reader of cached
 * entries (the cache tiers, the consistency checker) goes through this module.
 *
 * `version` sits at the top level because the INVALIDATE script (scripts.ts) reads it.
 */
export interface CacheEntry<T> {
  version: number;
  /** When the DB read that produced the value began (epoch ms): the `Age` of what is served. */
  storedAt: number;
  /** Logical expiry (TTL end); the Redis key may live up to the grace period longer. */
  expiresAt: number;
  /** How long the DB read took (ms): XFetch refreshes expensive values earlier. */
  delta: number;
  value: T;
}

/**
 * "No such row" (negative caching): version 0, below every real version, so any invalidation of the
 * id (an INSERT by any path reaching the INVALIDATE script through CDC) deletes it. Never served
 * past its short TTL (no stale grace) and never put into L1.
 */
export type AbsentEntry = CacheEntry<null> & { absent: true };

export function createAbsentEntry(t: { startedAt: number; now: number; ttlMs: number }): AbsentEntry {
  return {
    version: 0,
    absent: true,
    storedAt: t.startedAt,
    expiresAt: t.now + t.ttlMs,
    delta: Math.max(1, t.now - t.startedAt),
    value: null,
  };
}

/** A stored entry that may be served, or an absent marker; null when neither (see decodeEntry). */
export function decodeStored<T>(raw: string, rules: EntryRules<T>, now: number): CacheEntry<T> | AbsentEntry | null {
  const e = parseEntry(raw);
  if (e && (e as Partial<AbsentEntry>).absent === true) return e.value === null && e.version === 0 ? (e as AbsentEntry) : null;
  return e ? decodeEntry(raw, rules, now, e) : null;
}

export function isAbsent(e: CacheEntry<unknown>): e is AbsentEntry {
  return (e as Partial<AbsentEntry>).absent === true;
}

/** What a cache needs to know about the values it stores. */
export interface EntryRules<T> {
  versionOf(value: T): number;
  /** The next instant the value becomes wrong without any write (epoch ms), or null. */
  validUntilMs(value: T): number | null;
  /** Guards against payloads of another code version: invalid = miss, never served. */
  isValid(value: unknown): value is T;
}

/**
 * A fresh entry for a value read from the DB between `startedAt` and `now`, with its TTL
 * (jittered, capped at validUntil). `ttlMs` 0 means the value must not be cached at all.
 */
export function createEntry<T>(
  rules: EntryRules<T>,
  value: T,
  t: { startedAt: number; now: number; baseTtlMs: number; jitter: number },
): { entry: CacheEntry<T>; ttlMs: number } {
  const ttlMs = jitteredTtlMs({ baseMs: t.baseTtlMs, jitter: t.jitter, nowMs: t.now, validUntilMs: rules.validUntilMs(value) });
  const entry: CacheEntry<T> = {
    version: rules.versionOf(value),
    storedAt: t.startedAt,
    expiresAt: t.now + ttlMs,
    delta: Math.max(1, t.now - t.startedAt),
    value,
  };
  return { entry, ttlMs };
}

export function encodeEntry(entry: CacheEntry<unknown>): string {
  return JSON.stringify(entry);
}

/** The envelope of a stored entry, value unchecked; null when the payload is not one. */
export function parseEntry(raw: string): CacheEntry<unknown> | null {
  try {
    const e = JSON.parse(raw) as Partial<CacheEntry<unknown>> | null;
    if (typeof e !== "object" || e === null) return null;
    if (typeof e.storedAt !== "number" || typeof e.expiresAt !== "number" || typeof e.version !== "number") return null;
    return e as CacheEntry<unknown>;
  } catch {
    return null;
  }
}

/**
 * A stored entry that may be served: a valid value not past its validUntil. Null otherwise
 * (unreadable, written by another code version, or past its price boundary).
 */
export function decodeEntry<T>(raw: string, rules: EntryRules<T>, now: number, parsed?: CacheEntry<unknown>): CacheEntry<T> | null {
  const e = parsed ?? parseEntry(raw);
  if (!e || !rules.isValid(e.value)) return null;
  const validUntil = rules.validUntilMs(e.value);
  // Belt and braces: the Redis TTL is already capped at validUntil.
  if (validUntil !== null && validUntil <= now) return null;
  return e as CacheEntry<T>;
}

/** Past its TTL: may still be served during the grace period (stale-while-revalidate), never as a hit. */
export function isExpired(entry: CacheEntry<unknown>, now: number): boolean {
  return now >= entry.expiresAt;
}

/** XFetch (Vattani et al.): refresh early with a probability that grows near expiry and with recompute cost. */
export function shouldRefreshEarly(entry: CacheEntry<unknown>, now: number, beta: number, random: () => number = Math.random): boolean {
  return beta > 0 && now - entry.delta * beta * Math.log(random()) >= entry.expiresAt;
}

/** How long Redis keeps the entry: its TTL plus the stale grace, the grace never crossing validUntil. */
export function storedTtlMs<T>(rules: EntryRules<T>, entry: CacheEntry<T>, ttlMs: number, staleGraceMs: number): number {
  const validUntil = rules.validUntilMs(entry.value);
  const grace = validUntil === null ? staleGraceMs : Math.max(0, Math.min(staleGraceMs, validUntil - entry.expiresAt));
  return ttlMs + grace;
}

/** How long an in-process copy may live: the L1 TTL, but never past the entry's expiry or validUntil. */
export function l1TtlMs<T>(rules: EntryRules<T>, entry: CacheEntry<T>, maxMs: number, now: number): number {
  const validUntil = rules.validUntilMs(entry.value);
  return Math.floor(Math.min(maxMs, entry.expiresAt - now, validUntil === null ? Number.POSITIVE_INFINITY : validUntil - now));
}
