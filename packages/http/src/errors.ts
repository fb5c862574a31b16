import { classifyDbError } from "@flashsale/db/errors";
import type { FastifyError, FastifyInstance, FastifyRequest } from "fastify";
import { Counter, type Registry } from "prom-client";
import { timedOut } from "./client-errors.ts";
import { ERROR_CODES, type ErrorCode } from "./error-codes.ts";

/** Error responses follow docs/architecture.md#rest-contract: `{ error: CODE, message, ...details }`. */
export class HttpError extends Error {
  readonly statusCode: number;
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;
  readonly headers: Record<string, string>;
  /** The underlying failure, logged for 5xx answers. */
  override readonly cause?: unknown;
  // Plain fields, not parameter properties: Node's type stripping runs this file as is.
  constructor(
    statusCode: number,
    code: ErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    headers: Record<string, string> = {},
    cause?: unknown,
  ) {
    super(message);
    this.statusCode = statusCode;
    this.code = code;
    this.details = details;
    this.headers = headers;
    this.cause = cause;
  }
}

export const errorBodySchema = {
  type: "object",
  required: ["error", "message"],
  // The enum is the catalogue itself: OpenAPI lists every code, and a code outside it fails the
  // fuzz run's response-schema check.
  properties: { error: { type: "string", enum: Object.keys(ERROR_CODES) as ErrorCode[] }, message: { type: "string" } },
  additionalProperties: true,
} as const;

// Fastify's own 4xx errors mapped to stable machine-readable codes.
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
  FST_ERR_CTP_EMPTY_JSON_BODY: "INVALID_BODY",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "INVALID_BODY",
  FST_ERR_CTP_INVALID_JSON_BODY: "INVALID_BODY",
};

/** True when err (or anything it wraps) says the database could not be reached (packages/db classifies). */
export function isDbUnavailable(err: unknown): boolean {
  return classifyDbError(err) === "unavailable";
}

/**
 * The client hung up before we answered (mid-body, or while the handler ran). Checked
 * before any classification: the socket error it causes (ECONNRESET "aborted") says
 * nothing about our dependencies.
 */
function clientGone(request: FastifyRequest): boolean {
  const raw = request.raw;
  return raw.aborted || raw.readableAborted || raw.socket?.destroyed === true;
}

interface ValidationIssue {
  keyword: string;
  instancePath: string;
  params: { additionalProperty?: string };
}

interface ErrorAnswer {
  status: number;
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
  headers?: Record<string, string>;
}

const RETRY_SOON = { "retry-after": "1" };

/** What an error becomes on the wire, logged at the level it deserves. */
function answerFor(err: FastifyError | HttpError, request: FastifyRequest): ErrorAnswer {
  if (err instanceof HttpError) {
    if (err.statusCode >= 500) request.log.warn({ err: err.cause ?? err, code: err.code }, "request failed");
    return { status: err.statusCode, code: err.code, message: err.message, details: err.details, headers: err.headers };
  }
  if (timedOut(request.raw.socket)) {
    // Node already answered 408 REQUEST_TIMEOUT and cut the socket (client-errors.ts).
    request.log.info("request cut: not received within the request timeout");
    return { status: 408, code: "REQUEST_TIMEOUT", message: "the request did not arrive in time" };
  }
  if (clientGone(request)) {
    // Checked before any classification: the socket error a hang-up causes (ECONNRESET
    // "aborted") says nothing about our dependencies. Not our failure and nobody to
    // answer: logged below error level, 499 for the access log and metrics only.
    request.log.info({ reason: err.message }, "client aborted the request");
    return { status: 499, code: "CLIENT_ABORTED", message: "client closed the connection" };
  }
  if (err.validation) {
    const first = err.validation[0] as ValidationIssue | undefined;
    const property = first?.keyword === "additionalProperties" ? first.params.additionalProperty : undefined;
    if (property !== undefined) {
      const where = `${err.validationContext ?? "request"}${first?.instancePath ?? ""}`;
      return { status: 400, code: "UNKNOWN_PROPERTY", message: `${where} has no property '${property}'`, details: { property } };
    }
    return { status: 400, code: "VALIDATION_FAILED", message: err.message };
  }
  switch (classifyDbError(err)) {
    case "invalid_input":
      // Defense in depth behind the schemas: Postgres refused the client's value.
      request.log.warn({ err }, "input rejected by Postgres");
      return { status: 400, code: "INVALID_VALUE", message: "a value is out of range or not valid" };
    case "conflict":
      request.log.warn({ err }, "write refused by a constraint");
      return { status: 409, code: "CONFLICT", message: "the write conflicts with existing data" };
    case "unavailable":
      request.log.warn({ err }, "database unavailable");
      return { status: 503, code: "DB_UNAVAILABLE", message: "the database is unavailable; retry shortly", headers: RETRY_SOON };
    case "busy":
      request.log.warn({ err }, "database saturated");
      return { status: 503, code: "OVERLOADED", message: "the database is saturated; retry shortly", headers: RETRY_SOON };
    case "retryable":
      // A deadlock or serialization failure that outlived the write's own retries: the
      // request lost a race with a concurrent write (nothing was written), not a bug.
      request.log.warn({ err }, "write lost to a concurrent write");
      return { status: 409, code: "CONFLICT", message: "the write collided with a concurrent write and was rolled back; retry" };
    default:
      break;
  }
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    const code = FASTIFY_CODES[err.code] ?? (err instanceof SyntaxError ? "INVALID_BODY" : "BAD_REQUEST");
    return { status, code, message: err.message };
  }
  request.log.error({ err }, "unhandled error");
  return { status: 500, code: "INTERNAL", message: "internal error" };
}

/**
 * Every failure leaves as a JSON error with a code; anything unexpected is a logged 500.
 * `http_error_responses_total{code}` counts each answer by its code, so a client abort,
 * a bad value and a database outage are told apart in metrics too.
 */
export function installErrorHandling(app: FastifyInstance, metrics?: Registry): void {
  const answers = metrics
    ? new Counter({
        name: "http_error_responses_total",
        help: "Error answers by machine-readable code (CLIENT_ABORTED: the client had already gone)",
        labelNames: ["code"] as const,
        registers: [metrics],
      })
    : null;
  app.setErrorHandler((err: FastifyError | HttpError, request, reply) => {
    const a = answerFor(err, request);
    answers?.inc({ code: a.code });
    return reply
      .status(a.status)
      .headers(a.headers ?? {})
      .send({ error: a.code, message: a.message, ...a.details });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send({ error: "NOT_FOUND", message: `no route ${request.method} ${request.url}` });
  });
}
