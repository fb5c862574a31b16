/**
 * The catalogue of every error code an API answers with (`{ error: CODE, message }`).
 * HttpError only accepts these, so a new code has to be added (and described) here;
 * README's API section lists them.
 */
export const ERROR_CODES = {
  // 400
  VALIDATION_FAILED: "a parameter, header or body field does not match the schema",
  UNKNOWN_PROPERTY: "the body or query has a property the API does not define (named in `property`)",
  INVALID_BODY: "the body is not valid JSON or is empty where JSON is required",
  INVALID_VALUE: "Postgres refused a value (out of range, not valid text)",
  BAD_REQUEST: "another malformed request",
  IDEMPOTENCY_KEY_REQUIRED: "checkout needs an Idempotency-Key header",
  INVALID_SALE_WINDOW: "startsAt is not before endsAt",
  INVALID_IMPORT: "an import line is malformed (line in `line`)",
  DUPLICATE_SKU: "an import names a SKU twice (line in `line`)",
  CART_FULL:
    "the cart would exceed a cart's limits (100 distinct products, 1,000 units in all; `maxLines`/`maxUnits`); checkout refuses a bigger cart too",
  // 401
  UNAUTHORIZED: "admin route without the right bearer token",
  // 404
  NOT_FOUND: "no such route, product or order (or not yours)",
  CART_NOT_FOUND: "no such cart, or not yours",
  PRODUCT_NOT_FOUND: "the product to add does not exist",
  // 409
  SKU_EXISTS: "a product with this SKU exists",
  PRICE_CHANGED: "a cart line's price changed since it was added",
  OUT_OF_STOCK: "not enough stock for a cart line",
  CART_EMPTY: "the cart has no items",
  CONFLICT: "the write conflicts with existing data (uniqueness or a reference) or with a concurrent write (retry)",
  PRODUCT_IN_ORDERS: "the product appears in orders and cannot be deleted",
  // 408, 413, 415, 431
  REQUEST_TIMEOUT: "the request's headers or body did not arrive within the configured time (connection closed)",
  HEADERS_TOO_LARGE: "the request headers exceed Node's limit",
  PAYLOAD_TOO_LARGE: "the body is larger than the route accepts",
  IMPORT_TOO_LARGE: "an import has more rows than allowed",
  UNSUPPORTED_MEDIA_TYPE: "the body's content type is not accepted",
  // 422
  IDEMPOTENCY_KEY_REUSED: "this Idempotency-Key was used by this principal for a different request",
  // 429
  RATE_LIMITED: "too many checkout attempts for this principal; see Retry-After",
  // 499 (never reaches the client: it is gone; logs and metrics only)
  CLIENT_ABORTED: "the client closed the connection before the request was answered",
  // 500, 503
  INTERNAL: "an unexpected failure (logged)",
  DB_UNAVAILABLE: "the database cannot be reached; see Retry-After",
  OVERLOADED: "the service sheds load (pool or queue full); see Retry-After",
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;
