/**
 * Loaded with `node --import tsx --import ./packages/telemetry/src/register.ts` before
 * a service's main.ts: installs the ESM loader hook the instrumentations need to patch
 * `import`ed modules, then starts tracing (if configured; see tracing.ts).
 */
import { register } from "node:module";
import { startTracing } from "./tracing.ts";

if (process.env.OTEL_EXPORTER_OTLP_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
  register("@opentelemetry/instrumentation/hook.mjs", import.meta.url);
  startTracing();
}
