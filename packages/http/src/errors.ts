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
    const pgCode = (err as { meta?: { code?: string } }).meta?.code ?? (err as { code?: string }).code;
    if (typeof pgCode === "string" && /^22[0-9A-Z]{3}$/.test(pgCode)) {
      request.log.warn({ err }, "input rejected by Postgres");
      return reply.status(400).send({ error: "INVALID_VALUE", message: "a value is out of range or not valid text" });
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
