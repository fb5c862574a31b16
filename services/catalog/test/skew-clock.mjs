// Preloaded into a catalog process (NODE_OPTIONS=--import) by sale-boundary.test.ts: the process's
// wall clock runs FAKE_CLOCK_SKEW_MS off the real one (Date.now and new Date()), as on a host whose
// clock drifted from the database's. Monotonic time (performance.now) is left alone, as a wall-clock
// offset does not change it.
const skew = Number(process.env.FAKE_CLOCK_SKEW_MS ?? 0);
const RealDate = globalThis.Date;
const realNow = RealDate.now.bind(RealDate);
class SkewedDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(realNow() + skew);
    else super(...args);
  }
  static now() {
    return realNow() + skew;
  }
}
globalThis.Date = SkewedDate;
