import type { FastifyError, FastifyInstance } from "fastify";

/** Error responses follow design.md §7: `{ error: CODE, message, ...details }`. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
    /** The underlying failure, logged for 5xx answers. */
    override readonly cause?: unknown,
  ) {
    super(message);
  }
}

export const errorBodySchema = {
  type: "object",
  required: ["error", "message"],
  properties: { error: { type: "string" }, message: { type: "string" } },
  additionalProperties: true,
} as const;

// Fastify's own 4xx errors mapped to stable machine-readable codes.
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
  FST_ERR_CTP_EMPTY_JSON_BODY: "INVALID_BODY",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "INVALID_BODY",
  FST_ERR_CTP_INVALID_JSON_BODY: "INVALID_BODY",
};

// Codes meaning "the database is unreachable or shutting down": Prisma connection
// errors, Postgres class 08 (connection) and 57P0x (shutdown), socket errors.
const DB_UNAVAILABLE = /^(P1001|P1002|P1008|P1017|P2024|P2028|08[0-9A-Z]{3}|57P0[1-3]|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE)$/;

/**
 * Error codes carried by err and what it wraps: Prisma 7 puts the Postgres SQLSTATE at
 * meta.driverAdapterError.cause.code, node-postgres at code, sockets at code/cause.code.
 */
function errorCodes(err: unknown, depth = 0): string[] {
  if (!err || typeof err !== "object" || depth > 5) return [];
  const e = err as { code?: unknown; meta?: { code?: unknown; driverAdapterError?: unknown }; cause?: unknown };
  const own = [e.code, e.meta?.code].filter((c): c is string => typeof c === "string");
  return [...own, ...errorCodes(e.meta?.driverAdapterError, depth + 1), ...errorCodes(e.cause, depth + 1)];
}

/** True when err (or anything it wraps) says the database could not be reached. */
export function isDbUnavailable(err: unknown): boolean {
  if (errorCodes(err).some((c) => DB_UNAVAILABLE.test(c))) return true;
  const message = (err as { message?: unknown })?.message;
  return (
    typeof message === "string" &&
    /Can't reach database server|Connection terminated|connect ECONNREFUSED|server closed the connection/i.test(message)
  );
}

/** Every failure leaves as a JSON error with a code; anything unexpected is a logged 500. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | HttpError, request, reply) => {
    if (err instanceof HttpError) {
      if (err.statusCode >= 500) request.log.warn({ err: err.cause ?? err, code: err.code }, "request failed");
      return reply
        .status(err.statusCode)
        .headers(err.headers)
        .send({ error: err.code, message: err.message, ...err.details });
    }
    if (err.validation) {
      return reply.status(400).send({ error: "VALIDATION_FAILED", message: err.message });
    }
    // Defense in depth behind the schemas: Postgres "data exception" (class 22: out of
    // range, bad encoding, invalid text) is the client's input, not our failure.
    if (errorCodes(err).some((c) => /^22[0-9A-Z]{3}$/.test(c))) {
      request.log.warn({ err }, "input rejected by Postgres");
      return reply.status(400).send({ error: "INVALID_VALUE", message: "a value is out of range or not valid text" });
    }
    if (isDbUnavailable(err)) {
      request.log.warn({ err }, "database unavailable");
      return reply
        .status(503)
        .header("retry-after", "1")
        .send({ error: "DB_UNAVAILABLE", message: "the database is unavailable; retry shortly" });
    }
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const code = FASTIFY_CODES[err.code] ?? (err instanceof SyntaxError ? "INVALID_BODY" : "BAD_REQUEST");
      return reply.status(status).send({ error: code, message: err.message });
    }
    request.log.error({ err }, "unhandled error");
    return reply.status(500).send({ error: "INTERNAL", message: "internal error" });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send({ error: "NOT_FOUND", message: `no route ${request.method} ${request.url}` });
  });
}
