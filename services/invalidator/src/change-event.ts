import { PRODUCT_DELETE_FENCE_VERSION } from "@flashsale/product-cache";

/**
 * Parsing of Debezium change events (JsonConverter, schemas.enable=false): key `{"id": 1}`; value
 * flattened as infra/debezium sends it (the row's streamed columns plus `__op`, `__table`,
 * `__source_ts_ms`: parseFlattened), or the unflattened envelope `{before, after, source: {ts_ms,
 * table, ...}, op, ts_ms}` (a connector without the transform).
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

/**
 * A freshness heartbeat (docs/architecture.md#freshness): a `cdc_heartbeat` row Debezium's
 * heartbeat.action.query updated, routed into the products topic. Applying it says: every change
 * on this partition committed before `committedAtMs` (DB clock) has been handled.
 */
export interface Heartbeat {
  kind: "heartbeat";
  committedAtMs: number;
}

/**
 * The product keyspace is retired (docs/architecture.md#invalidation): a `cache_epochs` row
 * (`versionFloor` above every version a row had before it) or Debezium's truncate event
 * (`versionFloor` null: values are dropped, the epoch row of the same transaction fences).
 */
export interface ProductsRetired {
  kind: "retire";
  reason: string;
  versionFloor: number | null;
  committedAtMs: number;
  /** Only these cache schema versions (default: every live one). */
  schemaVersions?: readonly number[];
  /**
   * Instead of one floor: each found id's current version in Postgres (absent = the row is gone).
   * Values older than it are deleted and its fence raised to it, so current values and fills survive.
   */
  currentVersions?: (ids: number[]) => Promise<Map<number, number>>;
}

export type ChangeEvent = ProductChange | Heartbeat | ProductsRetired | { kind: "tombstone" };

export class PoisonMessage extends Error {}

// A products or inventory event is a few hundred bytes (the connector streams only the columns
// invalidation needs: column.include.list); anything this large is not one of ours.
export const MAX_EVENT_BYTES = 256 * 1024;
// One value with the catalog's admin DELETE eviction (defined in packages/product-cache).
export const DELETE_FENCE_VERSION = PRODUCT_DELETE_FENCE_VERSION;

type Op = "c" | "u" | "d" | "r" | "t";

/** The part every Debezium event shares: op, the table it came from, commit time, the row image. */
interface Envelope {
  op: Op;
  committedAtMs: number;
  /** The table the row comes from (several tables are routed into the products topic). */
  table: string;
  /** `after` for creates/updates/reads, `before` (key columns only) for deletes; empty for a truncate. */
  row: Record<string, unknown>;
  key: Record<string, unknown> | null;
}

/** Null for a tombstone (Debezium may follow a delete with one, for log compaction). */
function parseEnvelope(key: Buffer | null, value: Buffer | null, tables: readonly string[]): Envelope | null {
  if (value === null || value.length === 0) return null;
  if (value.length > MAX_EVENT_BYTES) throw new PoisonMessage(`event of ${value.length} bytes exceeds ${MAX_EVENT_BYTES}`);
  const event = parseJson(value, "value");
  if ("__op" in event) return parseFlattened(event, key, tables);
  const op = event.op;
  if (op !== "c" && op !== "u" && op !== "d" && op !== "r" && op !== "t") throw new PoisonMessage(`unknown op ${JSON.stringify(op)}`);
  const source = asObject(event.source, "source");
  const table = source.table ?? tables[0];
  if (typeof table !== "string" || !tables.includes(table)) {
    throw new PoisonMessage(`event for table ${JSON.stringify(source.table)} on the ${tables[0]} topic`);
  }
  const committedAtMs = source.ts_ms;
  if (typeof committedAtMs !== "number") throw new PoisonMessage("source.ts_ms missing");
  const row = op === "t" ? {} : asObject(op === "d" ? event.before : event.after, op === "d" ? "before" : "after");
  return { op, table, committedAtMs, row, key: key ? parseJson(key, "key") : null };
}

/**
 * The flattened form infra/debezium sends (ExtractNewRecordState, add.fields=op,table,source.ts_ms):
 * the row's streamed columns plus `__op`, `__table`, `__source_ts_ms` (and `__deleted`). A delete
 * carries the key columns (the others at their defaults: not read).
 */
function parseFlattened(event: Record<string, unknown>, key: Buffer | null, tables: readonly string[]): Envelope {
  const op = event.__op;
  if (op !== "c" && op !== "u" && op !== "d" && op !== "r" && op !== "t") throw new PoisonMessage(`unknown op ${JSON.stringify(op)}`);
  const table = event.__table ?? tables[0];
  if (typeof table !== "string" || !tables.includes(table)) {
    throw new PoisonMessage(`event for table ${JSON.stringify(event.__table)} on the ${tables[0]} topic`);
  }
  const committedAtMs = event.__source_ts_ms;
  if (typeof committedAtMs !== "number") throw new PoisonMessage("__source_ts_ms missing");
  return { op, table, committedAtMs, row: event, key: key ? parseJson(key, "key") : null };
}

/** Tables whose events arrive on the products topic (infra/debezium routes the last two there). */
const PRODUCTS_TOPIC_TABLES = ["products", "cdc_heartbeat", "cache_epochs"] as const;

export function parseProductChange(key: Buffer | null, value: Buffer | null): ChangeEvent {
  const e = parseEnvelope(key, value, PRODUCTS_TOPIC_TABLES);
  if (!e) return { kind: "tombstone" };
  const { op, committedAtMs, row } = e;
  if (e.table === "cdc_heartbeat") return { kind: "heartbeat", committedAtMs };
  if (e.table === "cache_epochs") {
    if (op === "d") return { kind: "tombstone" }; // pruning old epochs retires nothing
    const floor = row.version_floor;
    if (typeof floor !== "number" || !Number.isSafeInteger(floor) || floor < 1) {
      throw new PoisonMessage(`epoch version_floor ${JSON.stringify(floor)} is not a positive integer`);
    }
    return { kind: "retire", reason: String(row.reason ?? "epoch"), versionFloor: floor, committedAtMs };
  }
  if (op === "t") return { kind: "retire", reason: "TRUNCATE", versionFloor: null, committedAtMs };
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

/**
 * The product id of a message's key when it is one (`{"id": N}`), else null: a poison event whose
 * key still names a product is evicted and fenced before it is dead-lettered.
 */
export function productIdOfKey(key: Buffer | null): number | null {
  if (key === null || key.length === 0 || key.length > 1024) return null;
  try {
    return toId(parseJson(key, "key").id);
  } catch {
    return null;
  }
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
  const e = parseEnvelope(key, value, ["inventory"]);
  if (!e) return { kind: "tombstone" };
  if (e.op === "t") return { kind: "tombstone" }; // the products truncate's epoch retires the keyspace; stock gates expire on their own
  const { op, committedAtMs, row } = e;
  const productId = toId(row.product_id ?? e.key?.product_id);
  if (op === "d") return { kind: "inventory", productId, available: null, committedAtMs };
  const available = row.available;
  if (typeof available !== "number" || !Number.isSafeInteger(available) || available < 0) {
    throw new PoisonMessage(`available ${JSON.stringify(available)} is not a non-negative integer`);
  }
  return { kind: "inventory", productId, available, committedAtMs };
}
