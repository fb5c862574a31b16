import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import type { Metric, Registry } from "prom-client";

/**
 * OTLP export of the service's metrics, when an OTLP endpoint is configured
 * (OTEL_EXPORTER_OTLP_ENDPOINT or ..._METRICS_ENDPOINT; interval OTEL_METRIC_EXPORT_INTERVAL).
 * The metrics themselves stay defined once, in prom-client (served on /metrics); each is
 * mirrored by an OTel observable instrument read at export time: counters as monotonic
 * sums, gauges as gauges, histograms the way Prometheus exposes them (`_bucket` per `le`,
 * `_sum`, `_count`, all cumulative). Call after every metric is registered.
 */
export function startOtlpMetrics(registry: Registry, serviceName: string): { stop(): Promise<void> } | null {
  if (!(process.env.OTEL_EXPORTER_OTLP_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)) return null;
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ "service.name": process.env.OTEL_SERVICE_NAME ?? serviceName }),
    readers: [
      new PeriodicExportingMetricReader({
        exporter: new OTLPMetricExporter(),
        exportIntervalMillis: Number(process.env.OTEL_METRIC_EXPORT_INTERVAL ?? 60_000),
      }),
    ],
  });
  const meter = provider.getMeter("flashsale-prometheus-bridge");
  for (const object of registry.getMetricsAsArray()) {
    const metric = object as unknown as Metric; // the registry holds the metric instances themselves
    const { name, help, type } = object as unknown as { name: string; help: string; type: string };
    const read = async (suffix = "") =>
      ((await metric.get()).values ?? []).filter((v) => ((v as { metricName?: string }).metricName ?? name) === `${name}${suffix}`);
    const series = (suffixes: string[], kind: "counter" | "gauge") => {
      for (const suffix of suffixes) {
        const instrument =
          kind === "counter"
            ? meter.createObservableCounter(`${name}${suffix}`, { description: help })
            : meter.createObservableGauge(`${name}${suffix}`, { description: help });
        instrument.addCallback(async (result) => {
          for (const v of await read(suffix)) result.observe(v.value, v.labels as Record<string, string | number>);
        });
      }
    };
    if (type === "counter") series([""], "counter");
    else if (type === "gauge") series([""], "gauge");
    else if (type === "histogram") series(["_bucket", "_sum", "_count"], "counter");
  }
  return { stop: () => provider.shutdown() };
}
