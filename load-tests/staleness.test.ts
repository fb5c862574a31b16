import { describe, expect, it } from "vitest";
import { buildHistory, measureClockOffset, readAgeMs, staleness } from "./staleness.ts";

// Product 1: v10 committed at t=1000, v11 at 5000, v12 at 9000 (Postgres clock, ms).
const history = buildHistory([
  { productId: 1, version: 12, committedAtMs: 9_000 },
  { productId: 1, version: 10, committedAtMs: 1_000 },
  { productId: 1, version: 11, committedAtMs: 5_000 },
]);
const sameClock = { offsetMs: 0, uncertaintyMs: 0 };
const DELTA = 2_000;

describe("stale-read accounting", () => {
  it("a read of the newest state committed by its start is fresh, whatever came later", () => {
    expect(readAgeMs({ productId: 1, startedAtMs: 6_000, version: 11 }, history, sameClock).ageMs).toBe(0);
    expect(readAgeMs({ productId: 1, startedAtMs: 4_999, version: 10 }, history, sameClock).ageMs).toBe(0);
  });

  it("ages a read from the commit of the first newer version, not the newest", () => {
    // v10 outdated since 5000 (v11), read at 9500: 4500 ms, although v12 is only 500 ms old.
    expect(readAgeMs({ productId: 1, startedAtMs: 9_500, version: 10 }, history, sameClock)).toEqual({ ageMs: 4_500, newerVersion: 11 });
  });

  it("counts stale beyond Δ only past Δ, and outdated reads within Δ apart", () => {
    const r = staleness(
      [
        { productId: 1, startedAtMs: 5_100, version: 10 }, // outdated 100 ms: within Δ
        { productId: 1, startedAtMs: 7_000, version: 10 }, // exactly Δ: not beyond
        { productId: 1, startedAtMs: 7_001, version: 10 }, // beyond
        { productId: 1, startedAtMs: 9_100, version: 12 }, // fresh
        { productId: 2, startedAtMs: 9_100, version: 1 }, // no history tracked: not judged stale
      ],
      history,
      sameClock,
      DELTA,
    );
    expect(r).toMatchObject({ reads: 5, staleBeyondDelta: 1, outdated: 3, ageMaxMs: 2_001 });
    expect(r.samples).toEqual([{ productId: 1, version: 10, newerVersion: 11, agedMs: 2_001 }]);
    expect(r.freshWithinDelta).toBeCloseTo(0.8);
    expect(r.nines).toBeCloseTo(-Math.log10(0.2));
  });

  it("converts the driver's clock to Postgres's and gives the read the clock bracket's benefit", () => {
    // Driver clock 1000 ms behind Postgres: a read at driver 6001 began at db 7001.
    const behind = { offsetMs: 1_000, uncertaintyMs: 0 };
    expect(readAgeMs({ productId: 1, startedAtMs: 6_001, version: 10 }, history, behind).ageMs).toBe(2_001);
    // With ±5 ms uncertainty the same read is judged at db 6996: 1996 ms, not beyond Δ.
    const r = staleness([{ productId: 1, startedAtMs: 6_001, version: 10 }], history, { offsetMs: 1_000, uncertaintyMs: 5 }, DELTA);
    expect(r.staleBeyondDelta).toBe(0);
  });

  it("reports nines as at least log10(reads) when no read was stale", () => {
    const reads = Array.from({ length: 1000 }, (_, i) => ({ productId: 1, startedAtMs: 9_000 + i, version: 12 }));
    const r = staleness(reads, history, sameClock, DELTA);
    expect(r).toMatchObject({ staleBeyondDelta: 0, outdated: 0, freshWithinDelta: 1, ageP99Ms: 0 });
    expect(r.nines).toBeCloseTo(3);
  });

  it("measures the clock offset from the tightest bracket", async () => {
    let calls = 0;
    const c = await measureClockOffset(async () => {
      calls++;
      return Date.now() + 10_000;
    }, 3);
    expect(calls).toBe(3);
    expect(Math.abs(c.offsetMs - 10_000)).toBeLessThanOrEqual(c.uncertaintyMs);
  });
});
