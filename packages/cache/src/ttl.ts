/**
 * TTL is the safety net, CDC is the mechanism (docs/architecture.md#cache-protocol): base TTL with
 * +/- jitter so entries filled together do not expire together, but never past
 * `validUntil`, the next price boundary, because a sale ending is not a write and
 * no event will evict it. Returns 0 when the value must not be cached at all.
 */
export function jitteredTtlMs(opts: {
  baseMs: number;
  jitter: number;
  nowMs: number;
  validUntilMs: number | null;
  random?: () => number;
}): number {
  const random = opts.random ?? Math.random;
  const jittered = Math.round(opts.baseMs * (1 + opts.jitter * (2 * random() - 1)));
  if (opts.validUntilMs === null) return Math.max(1, jittered);
  const untilBoundary = opts.validUntilMs - opts.nowMs;
  return untilBoundary <= 0 ? 0 : Math.min(jittered, untilBoundary);
}
