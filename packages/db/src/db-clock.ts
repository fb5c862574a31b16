import type { Db } from "./client.ts";

/** An interval that surely contains the database's clock right now (epoch ms). */
export interface DbNow {
  lo: number;
  hi: number;
}

/**
 * The database's clock as this process can know it (docs/architecture.md#price-schedule-and-the-db-clock).
 * Prices and sale boundaries are DB-clock facts; a process whose own clock is off must still put
 * every request on the right side of a boundary. Each query that returns `clock_timestamp()` is a
 * sample: the DB read its clock somewhere between the app's monotonic clock before and after the
 * query, so `dbClock - monotonic` lies in [db - 1 - after, db + 1 - before] (±1: the DB time arrives
 * at ms precision). Samples are intersected (the tightest bound wins) and every bound widens with
 * elapsed time by `driftPpm` (two quartz clocks drift apart). An empty intersection means a clock
 * was stepped: the newest sample replaces the estimate. The app's wall clock (Date.now) is never
 * used, so stepping or skewing it changes nothing.
 */
export class DbClock {
  private lo = 0;
  private hi = 0;
  /** Monotonic time of the last sample; NaN = never calibrated. */
  private at = Number.NaN;
  private readonly driftPerMs: number;
  private readonly mono: () => number;
  /** How often the estimate was replaced because samples disagreed (a clock step). */
  steps = 0;

  constructor(opts: { driftPpm?: number } = {}, mono: () => number = () => performance.now()) {
    this.driftPerMs = (opts.driftPpm ?? 200) / 1e6;
    this.mono = mono;
  }

  /** Monotonic time now, for bracketing a query. */
  monotonic(): number {
    return this.mono();
  }

  /** The DB said `dbMs` (epoch ms) while the monotonic clock went from `before` to `after`. */
  observe(before: number, dbMs: number, after: number): void {
    const lo = dbMs - 1 - after;
    const hi = dbMs + 1 - before;
    if (Number.isNaN(this.at)) {
      this.lo = lo;
      this.hi = hi;
    } else {
      const widen = Math.max(0, after - this.at) * this.driftPerMs;
      const nextLo = Math.max(lo, this.lo - widen);
      const nextHi = Math.min(hi, this.hi + widen);
      if (nextLo > nextHi) {
        this.steps++;
        this.lo = lo;
        this.hi = hi;
      } else {
        this.lo = nextLo;
        this.hi = nextHi;
      }
    }
    this.at = after;
  }

  /** The DB clock now, as an interval; null before the first sample. */
  now(): DbNow | null {
    if (Number.isNaN(this.at)) return null;
    const m = this.mono();
    const widen = Math.max(0, m - this.at) * this.driftPerMs;
    return { lo: m + this.lo - widen, hi: m + this.hi + widen };
  }

  /** Monotonic ms since the last sample (Infinity before the first). */
  sampleAgeMs(): number {
    return Number.isNaN(this.at) ? Number.POSITIVE_INFINITY : this.mono() - this.at;
  }
}

/** This process's estimate, fed by every product read (products.ts) and by `probeDbClock`. */
export const dbClock = new DbClock();

/** One sample without a product read: at start-up and when no fill has sampled for a while. */
export async function probeDbClock(db: Db, clock: DbClock = dbClock): Promise<void> {
  const before = clock.monotonic();
  const rows = await db.$queryRaw<{ db_now: Date }[]>`SELECT clock_timestamp() AS db_now`;
  const after = clock.monotonic();
  const dbNow = rows[0]?.db_now;
  if (dbNow) clock.observe(before, dbNow.getTime(), after);
}
