import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";

/**
 * The one sink for failures a component swallows on purpose (its caller still gets an answer):
 * each is logged at warn with the operation that failed, and counted in `metric{operation}`, so a
 * failed background refresh or lease release leaves a trace instead of vanishing.
 */
export function reportSuppressedErrors(opts: {
  registry: Registry;
  logger: Logger;
  /** e.g. catalog_cache_suppressed_errors_total */
  metric: string;
  /** What swallowed them, for the log line and the metric's help, e.g. "product cache". */
  component: string;
}): (operation: string, err: unknown) => void {
  const counter = new Counter({
    name: opts.metric,
    help: `Failures the ${opts.component} did not propagate (the read was still answered), by operation`,
    labelNames: ["operation"],
    registers: [opts.registry],
  });
  return (operation, err) => {
    counter.inc({ operation });
    opts.logger.warn({ operation, err: err instanceof Error ? err.message : String(err) }, `${opts.component}: ${operation} failed`);
  };
}
