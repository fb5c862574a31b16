export { protectWithBearer } from "./auth.ts";
export { documentedResponse } from "./contract.ts";
export { countDbQuery } from "./db-queries.ts";
export { ERROR_CODES, type ErrorCode } from "./error-codes.ts";
export { errorBodySchema, HttpError, installErrorHandling, isDbUnavailable } from "./errors.ts";
export { closeGracefully } from "./lifecycle.ts";
export { createServiceBase, type HttpLimits, type ReadinessAnyOf, type ReadinessCheck, withTimeout } from "./service-base.ts";
