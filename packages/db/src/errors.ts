/**
 * The one place that classifies database errors (Prisma 7 + @prisma/adapter-pg, or
 * node-postgres directly). No imports on purpose: packages/http loads this module
 * through the `@flashsale/db/errors` entry without pulling in the Prisma client.
 *
 * Where the facts sit in a Prisma 7 driver-adapter error (checked against a real
 * Postgres, see packages/db/test/errors.test.ts):
 *   { name: "PrismaClientKnownRequestError", code: "P2010",
 *     meta: { driverAdapterError: { cause: { kind, originalCode: "<SQLSTATE>", ... } } } }
 * The adapter copies the SQLSTATE to `originalCode` (not `code`) and maps socket errors
 * to a `kind` without a SQLSTATE (DatabaseNotReachable, ConnectionClosed, SocketTimeout).
 */

export type DbErrorClass =
  /** The database cannot be reached or is shutting down: an outage (503 DB_UNAVAILABLE). */
  | "unavailable"
  /**
   * The pool or transaction slot could not be had in time, or a statement ran past
   * DB_STATEMENT_TIMEOUT_MS / could not get its lock (57014, 55P03): saturation or
   * contention, not an outage and not a bug (503 OVERLOADED).
   */
  | "busy"
  /** Postgres refused a value (class 22, NOT NULL, CHECK): the client's input (400). */
  | "invalid_input"
  /** Uniqueness or a reference refused the write (409). */
  | "conflict"
  /** Deadlock or serialization failure: the transaction rolled back and may be retried. */
  | "retryable";

interface AdapterCause {
  kind?: unknown;
  originalCode?: unknown;
  code?: unknown;
}

interface MaybeDbError {
  name?: unknown;
  code?: unknown;
  severity?: unknown;
  message?: unknown;
  meta?: { driverAdapterError?: { cause?: AdapterCause } };
  cause?: unknown;
}

function adapterCause(err: MaybeDbError): AdapterCause | undefined {
  const c = err.meta?.driverAdapterError?.cause;
  return c && typeof c === "object" ? c : undefined;
}

function isPrismaError(err: MaybeDbError): boolean {
  return typeof err.name === "string" && err.name.startsWith("PrismaClient");
}

/** node-postgres' DatabaseError: a SQLSTATE in `code` plus a `severity`. */
function isPgError(err: MaybeDbError): boolean {
  return typeof err.code === "string" && typeof err.severity === "string";
}

/** The Postgres SQLSTATE carried by err (or what it wraps), if any. */
export function sqlState(err: unknown, depth = 0): string | undefined {
  if (!err || typeof err !== "object" || depth > 4) return undefined;
  const e = err as MaybeDbError;
  const cause = adapterCause(e);
  for (const c of [cause?.originalCode, cause?.code]) {
    if (typeof c === "string" && /^[0-9A-Z]{5}$/.test(c)) return c;
  }
  if (isPgError(e) && /^[0-9A-Z]{5}$/.test(e.code as string)) return e.code as string;
  return sqlState(e.cause, depth + 1);
}

const UNAVAILABLE_KINDS = new Set([
  "DatabaseNotReachable",
  "ConnectionClosed",
  "SocketTimeout",
  "TlsConnectionError",
  "DatabaseDoesNotExist",
]);
const INVALID_KINDS = new Set(["InvalidInputValue", "ValueOutOfRange", "LengthMismatch", "NullConstraintViolation"]);
const CONFLICT_KINDS = new Set(["UniqueConstraintViolation", "ForeignKeyConstraintViolation", "RestrictViolation"]);
// Prisma's own codes (engine-side validation and connection handling).
const PRISMA_UNAVAILABLE = new Set(["P1001", "P1002", "P1008", "P1017"]);
const PRISMA_BUSY = new Set(["P2024", "P2028"]);
const PRISMA_INVALID = new Set(["P2000", "P2005", "P2006", "P2007", "P2011", "P2012", "P2019", "P2020", "P2023", "P2033"]);
const PRISMA_CONFLICT = new Set(["P2002", "P2003", "P2014"]);

function classifySqlState(state: string): DbErrorClass | null {
  if (state.startsWith("08") || /^57P0[1-3]$/.test(state) || state === "53300") return "unavailable";
  if (state.startsWith("22") || state === "23502" || state === "23514") return "invalid_input";
  if (state.startsWith("23")) return "conflict";
  if (state === "40001" || state === "40P01") return "retryable";
  // statement_timeout (or a cancel), lock_timeout: the statement waited on contention too long.
  if (state === "57014" || state === "55P03") return "busy";
  return null;
}

/**
 * What kind of database failure err is, or null when it is not one this module can
 * name (a bug, or not a database error at all). Socket codes (ECONNRESET, ...) count
 * only inside a database error: a bare one may be a client hanging up or Redis.
 */
export function classifyDbError(err: unknown): DbErrorClass | null {
  if (!err || typeof err !== "object") return null;
  const e = err as MaybeDbError;
  const state = sqlState(e);
  if (state) {
    const byState = classifySqlState(state);
    if (byState) return byState;
  }
  const kind = adapterCause(e)?.kind;
  if (typeof kind === "string") {
    if (UNAVAILABLE_KINDS.has(kind)) return "unavailable";
    if (INVALID_KINDS.has(kind)) return "invalid_input";
    if (CONFLICT_KINDS.has(kind)) return "conflict";
    if (kind === "TransactionWriteConflict") return "retryable";
    if (kind === "TooManyConnections") return "unavailable";
  }
  if (isPrismaError(e) && typeof e.code === "string") {
    if (PRISMA_UNAVAILABLE.has(e.code)) return "unavailable";
    if (PRISMA_BUSY.has(e.code)) return "busy";
    if (PRISMA_INVALID.has(e.code)) return "invalid_input";
    if (PRISMA_CONFLICT.has(e.code)) return "conflict";
    if (e.code === "P2034") return "retryable";
  }
  const message = typeof e.message === "string" ? e.message : "";
  if (isPrismaError(e) || isPgError(e)) {
    if (/Can't reach database server|Connection terminated|server closed the connection/i.test(message)) return "unavailable";
    if (/timeout exceeded when trying to connect|Unable to start a transaction/i.test(message)) return "busy";
  }
  // node-postgres and pg-pool raise plain Errors (no code) that the adapter passes through
  // unchanged: matched by their exact messages (packages/db/test/errors.test.ts provokes them).
  if (message === "timeout exceeded when trying to connect") return "busy"; // every pooled connection in use
  if (/^Connection terminated( unexpectedly| due to connection timeout)?$/.test(message)) return "unavailable";
  // Our own read timeout (client.ts readTimeoutMs): the server did not answer at all, not even
  // to cancel on its statement timeout: hung or unreachable.
  if (message === "Query read timeout") return "unavailable";
  return e.cause ? classifyDbError(e.cause) : null;
}

/**
 * Runs a write that is safe to repeat as a whole (one statement, or one transaction) again
 * when Postgres rolled it back as a deadlock victim or for a serialization failure, at most
 * `attempts` times. A product DELETE meets a checkout holding the cart row and waiting for the
 * product's row (the cascade's revision trigger then waits for the cart): one of them is rolled
 * back, and an admin write must not answer 500 for it.
 */
export async function retryingConflicts<T>(write: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (err) {
      if (attempt >= attempts || classifyDbError(err) !== "retryable") throw err;
    }
  }
}
