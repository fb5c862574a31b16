import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { HttpError } from "./errors.ts";

/**
 * preHandler for admin routes: `Authorization: Bearer <token>`, compared in
 * constant time (hashing first makes the lengths equal, so length leaks nothing).
 */
export function requireBearer(token: string) {
  const expected = createHash("sha256").update(token).digest();
  return async (request: FastifyRequest): Promise<void> => {
    const header = request.headers.authorization ?? "";
    const given = header.startsWith("Bearer ") ? header.slice(7) : "";
    const actual = createHash("sha256").update(given).digest();
    if (!given || !timingSafeEqual(actual, expected)) {
      throw new HttpError(401, "UNAUTHORIZED", "admin routes need Authorization: Bearer <ADMIN_TOKEN>");
    }
  };
}
