import { AsyncLocalStorage } from "node:async_hooks";
import type { FastifyInstance } from "fastify";
import { Histogram, type Registry } from "prom-client";

const perRequest = new AsyncLocalStorage<{ queries: number }>();
/** The same counters by request, for onResponse (which may not run inside the request's async context). */
const byRequest = new WeakMap<object, { queries: number }>();

/** Called for every database query (the db client's hook); counts it against the current request. */
export function countDbQuery(): void {
  const store = perRequest.getStore();
  if (store) store.queries++;
}

/**
 * `http_request_db_queries{route}`: database queries per request. The cache's whole
 * point is to keep it near zero on reads; a jump means a cache tier stopped working.
 */
export function trackDbQueriesPerRequest(app: FastifyInstance, metrics: Registry): void {
  const histogram = new Histogram({
    name: "http_request_db_queries",
    help: "Database queries per HTTP request, by route",
    labelNames: ["route"],
    buckets: [0, 1, 2, 3, 5, 8, 13, 21],
    registers: [metrics],
  });
  app.addHook("onRequest", (request, _reply, done) => {
    const store = { queries: 0 };
    byRequest.set(request, store);
    perRequest.run(store, done);
  });
  app.addHook("onResponse", (request, _reply, done) => {
    const store = byRequest.get(request);
    const route = request.routeOptions.url;
    if (store && route && !["/metrics", "/healthz", "/readyz"].includes(route))
      histogram.observe({ route: `${request.method} ${route}` }, store.queries);
    done();
  });
}
