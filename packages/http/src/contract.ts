import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance, RouteOptions } from "fastify";
import { errorBodySchema } from "./errors.ts";
import { REQUEST_ID_HEADER } from "./observability.ts";

/**
 * The OpenAPI document (`/docs/json`) and its reference page (`/docs`, Swagger UI served from
 * the package: no network). Every route's documented answers are completed here with what the
 * shared service code sends on any route, so no route has to repeat it and none can forget it:
 * - `X-Request-Id` on every answer (observability.ts);
 * - 400 `VALIDATION_FAILED`/`UNKNOWN_PROPERTY` where the route validates input, 413/415 where it
 *   takes a body, 409 `CONFLICT` on writes, 500 `INTERNAL` (a bug, logged) and 503
 *   `DB_UNAVAILABLE`/`OVERLOADED` with `Retry-After` everywhere (errors.ts);
 * - an operationId (method + path) and a tag (the first path segment) unless the route sets its own.
 * Route-specific answers (404, 409, 304, `X-Cache`, …) stay declared by the route itself.
 */
export async function installApiContract(app: FastifyInstance, info: { title: string; description: string }): Promise<void> {
  app.addHook("onRoute", completeRouteContract);
  await app.register(swagger, {
    openapi: {
      info: { ...info, version: "1.0.0" },
      components: { securitySchemes: { [ADMIN_SECURITY_SCHEME]: { type: "http", scheme: "bearer", description: "ADMIN_TOKEN" } } },
    },
  });
  await app.register(swaggerUi, { routePrefix: "/docs", uiConfig: { deepLinking: true } });
}

/** The security scheme admin routes declare (auth.ts adds it with the check itself). */
export const ADMIN_SECURITY_SCHEME = "adminBearer";

const requestIdHeader = {
  [REQUEST_ID_HEADER]: { type: "string", description: "the request's id (the inbound X-Request-Id, or a generated one)" },
};
const retryAfter = { "retry-after": { type: "string", description: "seconds to wait before retrying" } };

/** A response schema: its body schema plus the headers it carries (the OpenAPI generator reads `headers`). */
export function documentedResponse(body: object, description: string, headers: Record<string, object> = {}): object {
  return { ...body, description, headers: { ...requestIdHeader, ...headers } };
}

const errorResponse = (description: string, headers: Record<string, object> = {}) =>
  documentedResponse(errorBodySchema, description, headers);

function completeRouteContract(route: RouteOptions): void {
  route.schema ??= {};
  const schema = route.schema as Record<string, unknown>;
  if (schema.hide) return;
  const method = (Array.isArray(route.method) ? route.method[0] : route.method) ?? "GET";
  const segments = route.url.split("/").filter(Boolean);
  schema.operationId ??= operationId(method, segments);
  schema.tags ??= [segments[0] === "admin" ? "admin" : (segments[0] ?? "service")];

  const declared = (schema.response ?? {}) as Record<string, object>;
  const response: Record<string, object> = {};
  for (const [status, body] of Object.entries(declared)) {
    const b = body as { description?: string; headers?: Record<string, object> };
    response[status] = { ...b, description: b.description ?? defaultDescription(status), headers: { ...requestIdHeader, ...b.headers } };
  }
  const takesInput = Boolean(schema.params || schema.querystring || schema.body || schema.headers);
  if (takesInput)
    response["400"] ??= errorResponse("VALIDATION_FAILED, UNKNOWN_PROPERTY or INVALID_VALUE: the input does not match this operation");
  // fastify parses a body on every method but GET/HEAD (DELETE included): 413/415 can come from any of them.
  if (schema.body || (method !== "GET" && method !== "HEAD")) {
    response["413"] ??= errorResponse("PAYLOAD_TOO_LARGE");
    response["415"] ??= errorResponse("UNSUPPORTED_MEDIA_TYPE");
  }
  // A write can meet a uniqueness or reference conflict the route does not name (errors.ts: CONFLICT).
  if (method !== "GET" && method !== "HEAD") response["409"] ??= errorResponse("CONFLICT: the write conflicts with existing data");
  response["500"] ??= errorResponse("INTERNAL: an unexpected failure (logged with the request id)");
  response["503"] ??= errorResponse("DB_UNAVAILABLE or OVERLOADED", retryAfter);
  schema.response = response;
}

function operationId(method: string, segments: string[]): string {
  const words = segments.map((s) => (s.startsWith(":") ? `by-${s.slice(1)}` : s)).flatMap((s) => s.split(/[-_]/));
  return [method.toLowerCase(), ...words.map((w) => w.charAt(0).toUpperCase() + w.slice(1))].join("");
}

function defaultDescription(status: string): string {
  return (
    {
      "200": "OK",
      "201": "Created",
      "204": "No Content",
      "304": "Not Modified",
      "404": "Not found",
      "409": "Conflict",
      "422": "Unprocessable",
    }[status] ?? status
  );
}
