export { requireBearer } from "./auth.ts";
export { countDbQuery } from "./db-queries.ts";
export { errorBodySchema, HttpError, installErrorHandling, isDbUnavailable } from "./errors.ts";
export { closeGracefully } from "./lifecycle.ts";
export { createServiceBase, type ReadinessCheck, withTimeout } from "./service-base.ts";
