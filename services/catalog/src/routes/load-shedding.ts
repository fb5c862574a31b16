import underPressure from "@fastify/under-pressure";
import { HttpError } from "@flashsale/http";
import type { FastifyInstance } from "fastify";
import { Counter, type Registry } from "prom-client";

export interface LoadSheddingOptions {
  /** Shed while the event loop's mean delay over the last sample exceeds this (ms); 0 = off. */
  maxEventLoopDelayMs: number;
  /** Shed while the V8 heap in use exceeds this (bytes); 0 = off. */
  maxHeapUsedBytes: number;
  /** How often the loop delay and heap are sampled (ms). */
  sampleIntervalMs?: number;
  metrics: Registry;
}

/**
 * Load shedding (docs/architecture.md#load-shedding): while the event loop is saturated (its mean
 * delay over the last sample is above the bound) or the heap is above its bound, every request of
 * the routes registered in this scope is answered at once with 503 OVERLOADED + Retry-After (the one
 * error catalogue's code), before any work: a cheap answer instead of a queue whose latency and
 * memory grow without bound. Health, readiness and metrics live outside this scope and are never
 * shed. Counted in `catalog_shed_requests_total{reason}`.
 */
export async function loadShedding(scope: FastifyInstance, opts: LoadSheddingOptions): Promise<void> {
  if (opts.maxEventLoopDelayMs <= 0 && opts.maxHeapUsedBytes <= 0) return;
  const shed = new Counter({
    name: "catalog_shed_requests_total",
    help: "Requests answered 503 OVERLOADED by load shedding, by reason (eventLoopDelay, heapUsedBytes)",
    labelNames: ["reason"],
    registers: [opts.metrics],
  });
  await scope.register(underPressure, {
    maxEventLoopDelay: opts.maxEventLoopDelayMs,
    maxHeapUsedBytes: opts.maxHeapUsedBytes,
    sampleInterval: opts.sampleIntervalMs ?? 100,
    pressureHandler: (_request, _reply, type) => {
      shed.labels(type).inc();
      return Promise.reject(
        new HttpError(503, "OVERLOADED", "the catalog is overloaded; retry shortly", { reason: type }, { "retry-after": "1" }),
      );
    },
  });
}
