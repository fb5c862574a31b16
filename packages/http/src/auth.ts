import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { ADMIN_SECURITY_SCHEME, documentedResponse } from "./contract.ts";
import { errorBodySchema, HttpError } from "./errors.ts";

/**
 * Every route this plugin context registers from now on needs the admin bearer token, and its
 * OpenAPI entry says so (security scheme + 401): the check and its documentation in one call.
 */
export function protectWithBearer(app: FastifyInstance, token: string): void {
  // onRequest, before the body is read: a client without the token must not make the service
  // buffer a 16 MB import body (or trickle it for the whole request timeout) just to hear 401.
  app.addHook("onRequest", requireBearer(token));
  app.addHook("onRoute", (route) => {
    route.schema ??= {};
    const schema = route.schema as { security?: unknown; response?: Record<string, unknown> };
    schema.security = [{ [ADMIN_SECURITY_SCHEME]: [] }];
    schema.response = { ...schema.response, 401: documentedResponse(errorBodySchema, "UNAUTHORIZED: no or wrong bearer token") };
  });
}

/**
 * The check protectWithBearer installs: `Authorization: Bearer <token>`, compared in
 * constant time (hashing first makes the lengths equal, so length leaks nothing).
 */
function requireBearer(token: string) {
  const expected = createHash("sha256").update(token).digest();
  return async (request: FastifyRequest): Promise<void> => {
    // The scheme is case-insensitive and may be followed by several spaces (RFC 9110 11.4):
    // "bearer <token>" from a clumsy script is the same credential, not a 401.
    const given = /^bearer +(.+)$/i.exec(request.headers.authorization ?? "")?.[1] ?? "";
    const actual = createHash("sha256").update(given).digest();
    if (!given || !timingSafeEqual(actual, expected)) {
      throw new HttpError(401, "UNAUTHORIZED", "admin routes need Authorization: Bearer <ADMIN_TOKEN>");
    }
  };
}
