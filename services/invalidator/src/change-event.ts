/**
 * Parsing of Debezium change events (JsonConverter, schemas.enable=false):
 * key `{"id": 1}`, value `{before, after, source: {ts_ms, table, ...}, op, ts_ms}`.
 * Anything we cannot interpret is a PoisonMessage: it goes to the dead-letter
 * topic with the reason, and never stops the consumer.
 */
export interface ProductChange {
  kind: "product";
  id: number;
  /** Version of the row after the change; for a delete, +infinity (no fill may ever pass). */
  version: number;
  op: Op;
  /** When Postgres committed the change (source.ts_ms), for the lag metric. */
  committedAtMs: number;
  /** W3C traceparent of the request that wrote the row, if it was traced (products.change_traceparent). */
  traceparent: string | null;
}

export type ChangeEvent = ProductChange | { kind: "tombstone" };

export class PoisonMessage extends Error {}

// A products or inventory event is a few hundred bytes; anything this large is not one of ours.
export const MAX_EVENT_BYTES = 256 * 1024;
export const DELETE_FENCE_VERSION = Number.MAX_SAFE_INTEGER;

type Op = "c" | "u" | "d" | "r";

/** The part every Debezium event shares: op, the table it came from, commit time, the row image. */
interface Envelope {
  op: Op;
  committedAtMs: number;
  /** `after` for creates/updates/reads, `before` (key columns only) for deletes. */
  row: Record<string, unknown>;
  key: Record<string, unknown> | null;
}

/** Null for a tombstone (Debezium may follow a delete with one, for log compaction). */
function parseEnvelope(key: Buffer | null, value: Buffer | null, table: string): Envelope | null {
  if (value === null || value.length === 0) return null;
  if (value.length > MAX_EVENT_BYTES) throw new PoisonMessage(`event of ${value.length} bytes exceeds ${MAX_EVENT_BYTES}`);
  const event = parseJson(value, "value");
  const op = event.op;
  if (op !== "c" && op !== "u" && op !== "d" && op !== "r") throw new PoisonMessage(`unknown op ${JSON.stringify(op)}`);
  const source = asObject(event.source, "source");
  if (source.table !== undefined && source.table !== table) {
    throw new PoisonMessage(`event for table ${JSON.stringify(source.table)} on the ${table} topic`);
  }
  const committedAtMs = source.ts_ms;
  if (typeof committedAtMs !== "number") throw new PoisonMessage("source.ts_ms missing");
  const row = asObject(op === "d" ? event.before : event.after, op === "d" ? "before" : "after");
  return { op, committedAtMs, row, key: key ? parseJson(key, "key") : null };
}

export function parseProductChange(key: Buffer | null, value: Buffer | null): ChangeEvent {
  const e = parseEnvelope(key, value, "products");
  if (!e) return { kind: "tombstone" };
  const { op, committedAtMs, row } = e;
  const id = toId(row.id ?? e.key?.id);
  if (op === "d") return { kind: "product", id, version: DELETE_FENCE_VERSION, op, committedAtMs, traceparent: null };
  const version = row.version;
  if (typeof version !== "number" || !Number.isSafeInteger(version) || version < 1) {
    throw new PoisonMessage(`row version ${JSON.stringify(version)} is not a positive integer`);
  }
  const tp = row.change_traceparent;
  const traceparent = typeof tp === "string" && /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/.test(tp) ? tp : null;
  return { kind: "product", id, version, op, committedAtMs, traceparent };
}

function parseJson(buf: Buffer, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString("utf8"));
  } catch {
    throw new PoisonMessage(`${what} is not JSON`);
  }
  return asObject(parsed, what);
}

function asObject(x: unknown, what: string): Record<string, unknown> {
  if (typeof x !== "object" || x === null || Array.isArray(x)) throw new PoisonMessage(`${what} is not an object`);
  return x as Record<string, unknown>;
}

function toId(x: unknown): number {
  if (typeof x === "number" && Number.isSafeInteger(x) && x > 0) return x;
  throw new PoisonMessage(`product id ${JSON.stringify(x)} is not a positive integer`);
}

export interface InventoryChange {
  kind: "inventory";
  productId: number;
  /** Postgres' available units after the change; null when the row was deleted. */
  available: number | null;
  committedAtMs: number;
}

/** Inventory events feed the checkout's stock gate with Postgres' `available`. */
export function parseInventoryChange(key: Buffer | null, value: Buffer | null): InventoryChange | { kind: "tombstone" } {
  const e = parseEnvelope(key, value, "inventory");
  if (!e) return { kind: "tombstone" };
  const { op, committedAtMs, row } = e;
  const productId = toId(row.product_id ?? e.key?.product_id);
  if (op === "d") return { kind: "inventory", productId, available: null, committedAtMs };
  const available = row.available;
  if (typeof available !== "number" || !Number.isSafeInteger(available) || available < 0) {
    throw new PoisonMessage(`available ${JSON.stringify(available)} is not a non-negative integer`);
  }
  return { kind: "inventory", productId, available, committedAtMs };
}
