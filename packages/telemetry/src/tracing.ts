import { FastifyOtelInstrumentation } from "@fastify/otel";
import { context, propagation, ROOT_CONTEXT, type SpanContext, trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { HttpInstrumentation } from "@opentelemetry/instrumentation-http";
import { IORedisInstrumentation } from "@opentelemetry/instrumentation-ioredis";
import { KafkaJsInstrumentation } from "@opentelemetry/instrumentation-kafkajs";
import { PgInstrumentation } from "@opentelemetry/instrumentation-pg";
import { NodeSDK } from "@opentelemetry/sdk-node";

let sdk: NodeSDK | null = null;
/** Probes and scrapes: frequent, uninteresting, and they would drown the traces that matter. */
const UNTRACED_PATHS = ["/metrics", "/healthz", "/readyz"];

/**
 * OpenTelemetry traces (HTTP in and out, Postgres, Redis, Kafka), exported over
 * OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set, and
 * entirely off otherwise. Started by register.ts before the service's modules load,
 * so the instrumentations can patch them. Standard OTEL_* variables apply
 * (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_BSP_SCHEDULE_DELAY, ...).
 * Metrics stay on each service's Prometheus /metrics.
 */
export function startTracing(): boolean {
  if (sdk || !(process.env.OTEL_EXPORTER_OTLP_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)) return false;
  sdk = new NodeSDK({
    serviceName: process.env.OTEL_SERVICE_NAME ?? "flashsale",
    traceExporter: new OTLPTraceExporter(),
    instrumentations: [
      new HttpInstrumentation({ ignoreIncomingRequestHook: (req) => UNTRACED_PATHS.includes(req.url ?? "") }),
      // Route-level spans (named after the route pattern, with http.route), registered into every
      // fastify instance as it is created, tagged with the request id (packages/http
      // observability.ts); lifecycle hooks stay out of the trace (noise on every request).
      new FastifyOtelInstrumentation({
        registerOnInitialization: true,
        instrumentHooks: false,
        ignorePaths: (o) => UNTRACED_PATHS.includes(o.url),
        requestHook: (span, req) => span.setAttribute("http.request.id", req.id),
      }),
      new PgInstrumentation(),
      new IORedisInstrumentation(),
      new KafkaJsInstrumentation(),
    ],
  });
  sdk.start();
  return true;
}

/** Flushes and stops tracing (graceful shutdown); a no-op when tracing is off. */
export async function shutdownTracing(): Promise<void> {
  await sdk?.shutdown().catch(() => {});
  sdk = null;
}

/**
 * The W3C traceparent of the active span, stored with catalog writes so the change
 * event Debezium emits carries it and the invalidator can link its work to the write
 * that caused it. Null when no span is active (raw SQL, tracing off).
 */
export function currentTraceparent(): string | null {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent ?? null;
}

/** The span context a stored traceparent names, for a span link. */
export function spanContextFromTraceparent(traceparent: string): SpanContext | undefined {
  return trace.getSpanContext(propagation.extract(ROOT_CONTEXT, { traceparent }));
}

export { trace };
