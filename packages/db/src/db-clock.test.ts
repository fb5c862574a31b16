import { describe, expect, it } from "vitest";
import { DbClock } from "./db-clock.ts";

/** The DB clock estimate (docs/architecture.md#price-schedule-and-the-db-clock), on a fake monotonic clock. */
describe("DbClock", () => {
  it("bounds the DB clock by the round trip of a sample, then tightens with more samples", () => {
    let mono = 1_000;
    const c = new DbClock({ driftPpm: 0 }, () => mono);
    expect(c.now()).toBeNull();
    // The DB (10 s ahead of the monotonic origin) read its clock somewhere inside [1000, 1010].
    c.observe(1_000, 11_004, 1_010);
    mono = 1_010;
    const first = c.now();
    expect(first?.lo).toBeLessThanOrEqual(11_010);
    expect(first?.hi).toBeGreaterThanOrEqual(11_010);
    expect((first?.hi ?? 0) - (first?.lo ?? 0)).toBe(12);
    // A faster sample narrows it: the true offset (10 000) stays inside.
    c.observe(2_000, 12_001, 2_002);
    mono = 2_002;
    const second = c.now();
    expect((second?.hi ?? 0) - (second?.lo ?? 0)).toBeLessThanOrEqual(4);
    expect(second?.lo).toBeLessThanOrEqual(12_002);
    expect(second?.hi).toBeGreaterThanOrEqual(12_002);
  });

  it("ignores the app's wall clock entirely", () => {
    let mono = 0;
    const c = new DbClock({ driftPpm: 0 }, () => mono);
    const realNow = Date.now;
    Date.now = () => realNow() - 5_000;
    try {
      c.observe(0, 50_000, 2);
      mono = 1_000;
      expect(c.now()?.lo).toBeGreaterThanOrEqual(50_997);
      expect(c.now()?.hi).toBeLessThanOrEqual(51_001);
    } finally {
      Date.now = realNow;
    }
  });

  it("widens with time by the drift allowance, and restarts from the newest sample when clocks were stepped", () => {
    let mono = 0;
    const c = new DbClock({ driftPpm: 1_000 }, () => mono);
    c.observe(0, 100_000, 2);
    mono = 10_002;
    const later = c.now();
    expect((later?.hi ?? 0) - (later?.lo ?? 0)).toBeCloseTo(4 + 2 * 10, 0);
    // The DB clock jumped 1 s forward: the samples disagree, the new one wins.
    c.observe(10_002, 111_003, 10_004);
    expect(c.steps).toBe(1);
    mono = 10_004;
    expect(c.now()?.lo).toBeGreaterThan(111_000);
  });
});
