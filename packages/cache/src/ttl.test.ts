import { describe, expect, it } from "vitest";
import { jitteredTtlMs } from "./ttl.ts";

const DAY = 86_400_000;

describe("jitteredTtlMs", () => {
  it("stays within +/- jitter of the base TTL", () => {
    const low = jitteredTtlMs({ baseMs: DAY, jitter: 0.05, nowMs: 0, validUntilMs: null, random: () => 0 });
    const high = jitteredTtlMs({ baseMs: DAY, jitter: 0.05, nowMs: 0, validUntilMs: null, random: () => 0.999999 });
    expect(low).toBe(Math.round(DAY * 0.95));
    expect(high).toBeGreaterThan(DAY * 1.049);
    expect(high).toBeLessThanOrEqual(DAY * 1.05);
  });

  it("spreads entries filled together", () => {
    const ttls = new Set(Array.from({ length: 100 }, () => jitteredTtlMs({ baseMs: DAY, jitter: 0.05, nowMs: 0, validUntilMs: null })));
    expect(ttls.size).toBeGreaterThan(90);
  });

  it("never reaches past validUntil, even with the largest jitter", () => {
    const ttl = jitteredTtlMs({ baseMs: DAY, jitter: 0.05, nowMs: 1_000, validUntilMs: 61_000, random: () => 0.999 });
    expect(ttl).toBe(60_000);
  });

  it("returns 0 (do not cache) at or past the boundary", () => {
    expect(jitteredTtlMs({ baseMs: DAY, jitter: 0.05, nowMs: 5_000, validUntilMs: 5_000 })).toBe(0);
    expect(jitteredTtlMs({ baseMs: DAY, jitter: 0.05, nowMs: 5_000, validUntilMs: 4_000 })).toBe(0);
  });
});
