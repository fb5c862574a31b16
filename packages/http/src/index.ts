export { protectWithBearer, requireBearer } from "./auth.ts";
export { documentedResponse } from "./contract.ts";
export { countDbQuery } from "./db-queries.ts";
export { ERROR_CODES, type ErrorCode } from "./error-codes.ts";
export { clientGone, errorBodySchema, HttpError, installErrorHandling, isDbUnavailable } from "./errors.ts";
export { closeGracefully } from "./lifecycle.ts";
export { REQUEST_ID_HEADER } from "./observability.ts";
export { createServiceBase, DEFAULT_HTTP_LIMITS, type HttpLimits, type ReadinessCheck, withTimeout } from "./service-base.ts";
