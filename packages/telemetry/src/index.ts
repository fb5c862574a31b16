import { type Logger, pino } from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";

export type { Logger };

/** JSON logs; the admin bearer token never reaches them (redacted wherever it appears). */
export function createLogger(service: string, level = "info"): Logger {
  return pino({
    name: service,
    level,
    redact: { paths: ["req.headers.authorization", "headers.authorization"], censor: "[redacted]" },
  });
}

/** One Prometheus registry per process, served on /metrics by each service. */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}
export { startOtlpMetrics } from "./otlp-metrics.ts";
export { currentTraceparent, shutdownTracing, spanContextFromTraceparent, startTracing, trace } from "./tracing.ts";
