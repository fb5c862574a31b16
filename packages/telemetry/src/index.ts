import { trace } from "@opentelemetry/api";
import { type Logger, pino } from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";

export type { Logger };

/**
 * JSON logs; the admin bearer token never reaches them (redacted wherever it appears). While a
 * span is active (tracing on), every line carries its `trace_id` and `span_id`, so a log line
 * leads to its trace and back.
 */
export function createLogger(service: string, level = "info", destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    name: service,
    level,
    mixin: traceIds,
    redact: { paths: ["req.headers.authorization", "headers.authorization"], censor: "[redacted]" },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** One Prometheus registry per process, served on /metrics by each service. */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}
export { reportSuppressedErrors } from "./suppressed-errors.ts";
export { currentTraceparent, shutdownTracing, spanContextFromTraceparent, startTracing, trace } from "./tracing.ts";

function traceIds(): Record<string, string> {
  const ctx = trace.getActiveSpan()?.spanContext();
  return ctx ? { trace_id: ctx.traceId, span_id: ctx.spanId } : {};
}
