/**
 * Stale-read accounting for the fault matrix (scripts/faults) and bench/staleness.ts, on the
 * bound of docs/architecture.md "Freshness": a read is **stale beyond Δ** when it returned a product
 * state older than one that was committed more than Δ before the read began.
 *
 * Inputs are facts, not guesses: every committed price state of a product with its database commit
 * time (`product_price_history` + `pg_xact_commit_timestamp`, one row per price change, raw SQL
 * included), and every read the driver made (when it began on the driver's clock, which version it
 * got). Versions of one product are bumped from one sequence under the row's lock, so for one
 * product version order is commit order.
 *
 * Clocks: commit times are Postgres's clock, read start times the driver's. `measureClockOffset`
 * brackets a `clock_timestamp()` query with the driver's clock; the accounting converts commit
 * times with that offset and gives the read the benefit of the bracket's half-width (a read is
 * counted stale only if it is stale for every offset within the bracket), so skew cannot invent a
 * stale read; on one host the bracket is well under a millisecond.
 */

export interface CommittedVersion {
  version: number;
  /** Commit time, Postgres clock, ms since the epoch. */
  committedAtMs: number;
}

export interface ObservedRead {
  productId: number;
  /** When the request was sent, driver clock (Date.now()). */
  startedAtMs: number;
  /** The `version` the catalog answered with. */
  version: number;
}

/** dbClock ≈ driverClock + offsetMs, within ± uncertaintyMs. */
export interface ClockOffset {
  offsetMs: number;
  uncertaintyMs: number;
}

export interface StalenessReport {
  reads: number;
  /** Reads stale by more than Δ (the bound says: 0). */
  staleBeyondDelta: number;
  /** Reads that returned an outdated state at all (any age, e.g. within the invalidation lag). */
  outdated: number;
  /** Fraction of reads fresh within Δ, and the same in "nines" (−log10 of the stale fraction). */
  freshWithinDelta: number;
  nines: number;
  /** How long the answered state had been outdated when the read began (0 = current), ms. */
  ageP50Ms: number;
  ageP99Ms: number;
  ageMaxMs: number;
  /** Up to 5 of the worst stale reads beyond Δ, for the report. */
  samples: Array<{ productId: number; version: number; newerVersion: number; agedMs: number }>;
}

/** Sorted by version, per product. */
export type History = Map<number, CommittedVersion[]>;

export function buildHistory(rows: Array<{ productId: number; version: number; committedAtMs: number }>): History {
  const h: History = new Map();
  for (const r of rows) {
    const list = h.get(r.productId) ?? [];
    h.set(r.productId, list);
    list.push({ version: r.version, committedAtMs: r.committedAtMs });
  }
  for (const list of h.values()) list.sort((a, b) => a.version - b.version);
  return h;
}

/**
 * How long the state a read returned had been outdated when the read began, in ms on the
 * database's clock (0: it was the newest state committed by then). A state is outdated from the
 * commit of the first newer version; a read is judged with the clock bracket in its favour.
 */
export function readAgeMs(read: ObservedRead, history: History, clock: ClockOffset): { ageMs: number; newerVersion: number } {
  const list = history.get(read.productId);
  if (!list) return { ageMs: 0, newerVersion: read.version };
  // Latest possible start of the read on the database's clock (in the read's favour).
  const startedDb = read.startedAtMs + clock.offsetMs - clock.uncertaintyMs;
  // First version newer than the one returned: its commit made the returned state outdated.
  const newer = list.find((v) => v.version > read.version);
  if (!newer || newer.committedAtMs >= startedDb) return { ageMs: 0, newerVersion: read.version };
  return { ageMs: startedDb - newer.committedAtMs, newerVersion: newer.version };
}

export function staleness(reads: ObservedRead[], history: History, clock: ClockOffset, deltaMs: number): StalenessReport {
  const ages: number[] = [];
  const stale: StalenessReport["samples"] = [];
  let outdated = 0;
  for (const r of reads) {
    const { ageMs, newerVersion } = readAgeMs(r, history, clock);
    ages.push(ageMs);
    if (ageMs > 0) outdated++;
    if (ageMs > deltaMs) stale.push({ productId: r.productId, version: r.version, newerVersion, agedMs: Math.round(ageMs) });
  }
  ages.sort((a, b) => a - b);
  const q = (p: number) => (ages.length ? (ages[Math.min(ages.length - 1, Math.max(0, Math.ceil(p * ages.length) - 1))] as number) : 0);
  const staleFraction = reads.length ? stale.length / reads.length : 0;
  return {
    reads: reads.length,
    staleBeyondDelta: stale.length,
    outdated,
    freshWithinDelta: 1 - staleFraction,
    // No stale read in n reads: at least log10(n) nines were shown (the run could not show more).
    nines: staleFraction > 0 ? -Math.log10(staleFraction) : reads.length > 0 ? Math.log10(reads.length) : 0,
    ageP50Ms: Math.round(q(0.5) * 10) / 10,
    ageP99Ms: Math.round(q(0.99) * 10) / 10,
    ageMaxMs: Math.round((ages.at(-1) ?? 0) * 10) / 10,
    samples: stale.sort((a, b) => b.agedMs - a.agedMs).slice(0, 5),
  };
}

/** Brackets Postgres's clock_timestamp() with the driver's clock (best of `tries`). */
export async function measureClockOffset(dbNowMs: () => Promise<number>, tries = 5): Promise<ClockOffset> {
  let best: ClockOffset | null = null;
  for (let i = 0; i < tries; i++) {
    const t0 = Date.now();
    const db = await dbNowMs();
    const t1 = Date.now();
    const cand = { offsetMs: db - (t0 + t1) / 2, uncertaintyMs: (t1 - t0) / 2 + 1 };
    if (!best || cand.uncertaintyMs < best.uncertaintyMs) best = cand;
  }
  return best as ClockOffset;
}

/** SQL for the history of some products with commit times in ms (Postgres clock; track_commit_timestamp = on). */
export const HISTORY_SQL = `SELECT product_id::int AS "productId", version::float8 AS version,
         extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000 AS "committedAtMs"
    FROM product_price_history WHERE product_id = ANY($1::bigint[])`;
