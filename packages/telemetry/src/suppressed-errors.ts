import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";

/**
 * The one sink for failures a component swallows on purpose (its caller still gets an answer):
 * each is counted in `metric{operation}` and logged at warn with the operation that failed, so a
 * failed background refresh or lease release leaves a trace instead of vanishing.
 *
 * The counter is exact; the log is not a firehose: per operation, the first failure is logged at
 * once and then at most one line per `logEveryMs`, carrying how many were not logged since. (During
 * a Postgres outage every cached key in its grace period fails a background refresh every lease
 * period: hundreds of lines a second that say one thing.)
 */
export function reportSuppressedErrors(opts: {
  registry: Registry;
  logger: Logger;
  /** e.g. catalog_cache_suppressed_errors_total */
  metric: string;
  /** What swallowed them, for the log line and the metric's help, e.g. "product cache". */
  component: string;
  logEveryMs?: number;
  now?: () => number;
}): (operation: string, err: unknown) => void {
  const counter = new Counter({
    name: opts.metric,
    help: `Failures the ${opts.component} did not propagate (the read was still answered), by operation`,
    labelNames: ["operation"],
    registers: [opts.registry],
  });
  const logEveryMs = opts.logEveryMs ?? 10_000;
  const now = opts.now ?? Date.now;
  const lastLog = new Map<string, { at: number; unlogged: number }>();
  return (operation, err) => {
    counter.inc({ operation });
    const t = now();
    const last = lastLog.get(operation);
    if (last && t - last.at < logEveryMs) {
      last.unlogged++;
      return;
    }
    lastLog.set(operation, { at: t, unlogged: 0 });
    opts.logger.warn(
      { operation, err: err instanceof Error ? err.message : String(err), unloggedSinceLastLine: last?.unlogged ?? 0 },
      `${opts.component}: ${operation} failed`,
    );
  };
}
