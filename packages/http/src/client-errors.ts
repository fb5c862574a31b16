import { randomUUID } from "node:crypto";
import type { Server } from "node:http";
import type { Socket } from "node:net";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Counter, type Registry } from "prom-client";
import type { ErrorCode } from "./error-codes.ts";
import { REQUEST_ID_HEADER } from "./observability.ts";

/** Set on a socket that Node cut for taking too long (headers or whole request). */
const TIMED_OUT = Symbol("flashsale.timedOut");

export function timedOut(socket: Socket | null | undefined): boolean {
  return (socket as (Socket & { [TIMED_OUT]?: boolean }) | null | undefined)?.[TIMED_OUT] === true;
}

/**
 * Protocol-level client errors (no request object exists yet, so the error handler never
 * sees them): a request that did not arrive within HTTP_HEADERS_TIMEOUT_MS /
 * HTTP_REQUEST_TIMEOUT_MS is answered 408 REQUEST_TIMEOUT and its socket destroyed;
 * malformed HTTP 400, oversized headers 431. Same JSON shape as every other error.
 * Replaces fastify's default handler (same behaviour, our error body, and a counter).
 */
export function clientErrorHandler(timeouts: Counter) {
  return (err: Error & { code?: string }, socket: Socket): void => {
    if (err.code === "ECONNRESET" || socket.destroyed) return;
    let status: number;
    let reason: string;
    let code: ErrorCode;
    if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
      (socket as Socket & { [TIMED_OUT]?: boolean })[TIMED_OUT] = true;
      timeouts.inc();
      [status, reason, code] = [408, "Request Timeout", "REQUEST_TIMEOUT"];
    } else if (err.code === "HPE_HEADER_OVERFLOW") {
      [status, reason, code] = [431, "Request Header Fields Too Large", "HEADERS_TOO_LARGE"];
    } else {
      [status, reason, code] = [400, "Bad Request", "BAD_REQUEST"];
    }
    const body = JSON.stringify({ error: code, message: err.message });
    if (socket.writable) {
      // Every answer carries a request id (observability.ts); no request was parsed, so it is a new one.
      socket.write(
        `HTTP/1.1 ${status} ${reason}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nX-Request-Id: ${randomUUID()}\r\nConnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  };
}

/**
 * Counts what the client, not the service, ended: `http_client_aborts_total` (the client
 * closed the connection before the answer) and `http_request_timeouts_total` (Node cut a
 * request whose headers or body arrived too slowly, see clientErrorHandler). Neither is
 * ever logged as an error or reported as a dependency failure.
 */
export function countClientAborts(app: FastifyInstance, metrics: Registry): void {
  const aborts = new Counter({
    name: "http_client_aborts_total",
    help: "Requests whose client closed the connection before the answer was sent",
    registers: [metrics],
  });
  app.addHook("onRequestAbort", async (request) => {
    // A socket Node cut for a timeout also ends the request: that is counted as a timeout.
    if (timedOut(request.raw.socket)) return;
    aborts.inc();
    request.log.info({ url: request.url }, "client closed the connection before the answer");
  });
}

export function requestTimeoutCounter(metrics: Registry): Counter {
  return new Counter({
    name: "http_request_timeouts_total",
    help: "Requests cut with 408 because their headers or body did not arrive in time",
    registers: [metrics],
  });
}

/** Requests received on a socket and not answered yet (pipelined requests queue behind the first). */
const UNANSWERED = Symbol("flashsale.unanswered");

/**
 * Bounds HTTP/1.1 pipelining: a connection with more than `max` requests received and not yet
 * answered is destroyed. Node parses every pipelined request of a received chunk and starts its
 * handler before any answer is written, and its own read back-pressure only looks at answers
 * already produced; so a client that pipelines thousands of requests for a large answer
 * (the 1.4 MB API page bundle, a 100-product page) and never reads made the process buffer
 * every answer: one connection took a service from 200 MB to over 1 GB in seconds. Browsers,
 * proxies and load generators do not pipeline this deep. Counted in
 * `http_pipelining_limit_cuts_total`. 0 = no limit.
 */
export function limitPipelining(server: Server, max: number, metrics: Registry): void {
  if (max <= 0) return;
  const cuts = new Counter({
    name: "http_pipelining_limit_cuts_total",
    help: "Connections destroyed for having more pipelined requests waiting for an answer than the limit",
    registers: [metrics],
  });
  // Before fastify's own listener: 'request' is emitted synchronously as the parser reads each request.
  server.prependListener("request", (req, res) => {
    const socket = req.socket as Socket & { [UNANSWERED]?: number };
    const waiting = (socket[UNANSWERED] ?? 0) + 1;
    socket[UNANSWERED] = waiting;
    res.once("close", () => {
      socket[UNANSWERED] = (socket[UNANSWERED] ?? 1) - 1;
    });
    if (waiting > max && !socket.destroyed) {
      cuts.inc();
      socket.destroy();
    }
  });
}

/**
 * Errors fastify's router raises before any route or hook runs (fastify's `frameworkErrors`):
 * a URL that is not valid percent-encoding (`/products/%FF`), a path parameter over 100
 * characters. Fastify answered them with its own body (`"error": "Bad Request"`, not a catalogue
 * code), without X-Request-Id, and the long parameter with an undocumented 414. Now: 400
 * BAD_REQUEST / VALIDATION_FAILED in the shape of every other error.
 */
export function routerErrorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const internal = err.code === "FST_ERR_ASYNC_CONSTRAINT";
  if (internal) request.log.error({ err }, "router constraint failed");
  const code: ErrorCode = internal ? "INTERNAL" : err.code === "FST_ERR_MAX_PARAM_LENGTH" ? "VALIDATION_FAILED" : "BAD_REQUEST";
  reply
    .header(REQUEST_ID_HEADER, request.id)
    .status(internal ? 500 : 400)
    .send({ error: code, message: err.message });
}
