import underPressure, { type FastifyUnderPressureOptions } from "@fastify/under-pressure";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Counter, type Registry } from "prom-client";

export interface LoadSheddingOptions {
  /** Shed while the event loop's mean delay over the last sample exceeds this (ms); 0 = off. */
  maxEventLoopDelayMs: number;
  /** Shed while the V8 heap in use exceeds this (bytes); 0 = off. */
  maxHeapUsedBytes: number;
  /** Shed a request arriving while this many API requests are already in progress; 0 = off. */
  maxInFlight?: number;
  /** How often the loop delay and heap are sampled (ms). */
  sampleIntervalMs?: number;
  metrics: Registry;
}

const COUNTED = Symbol("flashsale.inFlight");
type Counted = FastifyRequest & { [COUNTED]?: boolean };

/**
 * Load shedding (docs/architecture.md#load-shedding). Every request of the routes registered in this
 * scope is answered at once with 503 OVERLOADED + Retry-After (the one error catalogue's code),
 * before any work, while the event loop is saturated (its mean delay over the last sample is above
 * the bound: @fastify/under-pressure), or the heap is above its bound, or too many API requests are
 * already in progress (their latency would only grow with the queue). The 503 is a constant body
 * sent from the hook: no Error object, no log line, so shedding stays much cheaper than serving.
 * Health, readiness and metrics live outside this scope and are never shed. Counted in
 * `catalog_shed_requests_total{reason}`.
 */
export async function loadShedding(scope: FastifyInstance, opts: LoadSheddingOptions): Promise<void> {
  const maxInFlight = opts.maxInFlight ?? 0;
  if (opts.maxEventLoopDelayMs <= 0 && opts.maxHeapUsedBytes <= 0 && maxInFlight <= 0) return;
  const counter = new Counter({
    name: "catalog_shed_requests_total",
    help: "Requests answered 503 OVERLOADED by load shedding, by reason (eventLoopDelay, heapUsedBytes, inFlight)",
    labelNames: ["reason"],
    registers: [opts.metrics],
  });
  const body = JSON.stringify({ error: "OVERLOADED", message: "the catalog is overloaded; retry shortly" });
  const shed = (reply: FastifyReply, reason: string) => {
    counter.labels(reason).inc();
    return reply.code(503).headers({ "retry-after": "1", "content-type": "application/json; charset=utf-8" });
  };

  if (opts.maxEventLoopDelayMs > 0 || opts.maxHeapUsedBytes > 0) {
    await scope.register(underPressure, {
      maxEventLoopDelay: opts.maxEventLoopDelayMs,
      maxHeapUsedBytes: opts.maxHeapUsedBytes,
      sampleInterval: opts.sampleIntervalMs ?? 100,
      // under-pressure sends a non-null return value as the answer and stops there (its index.js
      // handlePressure); its types only declare void. Returning the body: no Error, no log line.
      pressureHandler: ((_request: FastifyRequest, reply: FastifyReply, type: string) => {
        shed(reply, type);
        return body;
      }) as unknown as NonNullable<FastifyUnderPressureOptions["pressureHandler"]>,
    });
  }

  if (maxInFlight > 0) {
    let inFlight = 0;
    const release = (request: Counted) => {
      if (request[COUNTED]) {
        request[COUNTED] = false;
        inFlight--;
      }
    };
    scope.addHook("onRequest", (request: Counted, reply, done) => {
      if (inFlight >= maxInFlight) {
        shed(reply, "inFlight").send(body);
        return;
      }
      inFlight++;
      request[COUNTED] = true;
      done();
    });
    scope.addHook("onResponse", (request: Counted, _reply, done) => {
      release(request);
      done();
    });
    scope.addHook("onRequestAbort", (request: Counted, done) => {
      release(request);
      done();
    });
  }
}
