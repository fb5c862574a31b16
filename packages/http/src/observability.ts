import { randomUUID } from "node:crypto";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { FastifyInstance, RawServerDefault } from "fastify";
import { Histogram, type Registry } from "prom-client";

/**
 * Request ids and RED metrics, shared by every service (registered by createServiceBase).
 *
 * Request id: an inbound `X-Request-Id` (from the gateway or the client) is kept when it is a
 * plausible id, otherwise one is generated; it is the request's log binding (`reqId` in every
 * line fastify's request logger writes), echoed as `X-Request-Id` on every response (set on the
 * raw response before fastify runs, so errors answered anywhere carry it too), and set on
 * the request's route span as `http.request.id` (packages/telemetry tracing.ts) so a trace can
 * be found from a support ticket.
 */
export const REQUEST_ID_HEADER = "x-request-id";
/** Printable, no spaces or quotes, bounded: what a log line or a header may safely carry. */
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

export function requestIdFor(req: { headers: Record<string, string | string[] | undefined> }): string {
  const inbound = req.headers[REQUEST_ID_HEADER];
  return typeof inbound === "string" && REQUEST_ID_PATTERN.test(inbound) ? inbound : randomUUID();
}

/** Where the id chosen for a raw request waits for fastify's genReqId (the same object, one id). */
const ID = Symbol("flashsale.requestId");
type WithId = IncomingMessage & { [ID]?: string };

/**
 * Chooses every request's id on Node's own `request` event, before fastify sees it, and sets the
 * response header there; `genReqId` (service-base) then adopts the same id. Not a fastify hook on
 * purpose: measured with bench/cache-tiers.ts, an onRequest/onSend hook that set the header cut a
 * Redis hit from 0.80x to 0.61x of bare fastify (p99 2 -> 13 ms); this costs about nothing.
 */
export function assignRequestIds(server: Server): void {
  server.prependListener("request", (req: WithId, res: ServerResponse) => {
    const id = requestIdFor(req);
    req[ID] = id;
    res.setHeader(REQUEST_ID_HEADER, id);
  });
}

/** fastify's genReqId: the id assignRequestIds chose (or a fresh choice for inject(), which bypasses the server). */
export function adoptRequestId(req: IncomingMessage): string {
  return (req as WithId)[ID] ?? requestIdFor(req);
}

/**
 * RED metrics per route: `http_request_duration_seconds{method,route,status_code}` (a histogram:
 * its `_count` is the rate, `status_code` gives errors, buckets give quantiles). `route` is the
 * route's pattern (`/products/:id`), never the raw URL, so cardinality stays bounded; requests
 * that match no route are `route="unmatched"`.
 */
export function installRequestObservability(app: FastifyInstance<RawServerDefault>, metrics: Registry): void {
  const duration = new Histogram({
    name: "http_request_duration_seconds",
    help: "HTTP requests by method, route pattern and status code: duration until the response was sent",
    labelNames: ["method", "route", "status_code"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [metrics],
  });
  assignRequestIds(app.server);
  app.addHook("onResponse", (req, reply, done) => {
    duration.observe(
      { method: req.method, route: req.routeOptions.url ?? "unmatched", status_code: reply.statusCode },
      reply.elapsedTime / 1000,
    );
    done();
  });
}
