import type { Socket } from "node:net";
import type { FastifyInstance } from "fastify";
import { Counter, type Registry } from "prom-client";
import type { ErrorCode } from "./error-codes.ts";

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
      socket.write(
        `HTTP/1.1 ${status} ${reason}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`,
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
