import type { Db } from "./client.ts";
import { dbClock } from "./db-clock.ts";
import { retryingConflicts, sqlState } from "./errors.ts";
import { Prisma } from "./generated/client.ts";
import type { Product } from "./product-schema.ts";

interface ProductRow {
  id: bigint;
  sku: string;
  name: string;
  description: string;
  currency: string;
  list_price_cents: number;
  sale_price_cents: number | null;
  sale_starts_at: Date | null;
  sale_ends_at: Date | null;
  version: bigint;
  updated_at: Date;
  price_cents: number;
  valid_until: Date | null;
  /** clock_timestamp(): a sample of the DB clock for this process's estimate (db-clock.ts). */
  db_now?: Date;
}

/**
 * A sale instant as the Product can carry it: Postgres accepts 'infinity', '-infinity' and years
 * past 9999 (raw SQL), which neither a JS Date nor an RFC 3339 date-time holds (a 500 for the
 * product and every list page with it). Clamped to [0001-01-01, 9999-12-31T23:59:59.999Z]: the
 * effective price is the same at every instant in between. valid_until (from the unclamped
 * columns) is clamped in toProduct: a boundary is never in the past, so an unreadable one is late.
 */
const clampedInstant = (col: string) =>
  Prisma.raw(`least(greatest(${col}, '0001-01-01 00:00:00+00'::timestamptz), '9999-12-31 23:59:59.999+00'::timestamptz)`);

// Effective price and boundary come from the SQL functions of the init migration,
// evaluated at the database's clock, so catalog and checkout share one definition.
const SELECT_PRODUCT = Prisma.sql`
  SELECT p.id, p.sku, p.name, p.description, p.currency, p.list_price_cents, p.sale_price_cents,
         ${clampedInstant("p.sale_starts_at")} AS sale_starts_at, ${clampedInstant("p.sale_ends_at")} AS sale_ends_at,
         p.version, p.updated_at,
         product_effective_price_cents(p, now()) AS price_cents,
         product_next_price_boundary(p, now()) AS valid_until,
         clock_timestamp() AS db_now
  FROM products p`;

const LATEST_INSTANT = "9999-12-31T23:59:59.999Z";
function lateInstantIso(d: Date): string {
  const t = d.getTime();
  return Number.isFinite(t) && t < Date.parse(LATEST_INSTANT) ? d.toISOString() : LATEST_INSTANT;
}

function toProduct(r: ProductRow): Product {
  const sale =
    r.sale_price_cents !== null && r.sale_starts_at && r.sale_ends_at
      ? { priceCents: r.sale_price_cents, startsAt: r.sale_starts_at.toISOString(), endsAt: r.sale_ends_at.toISOString() }
      : null;
  return {
    id: Number(r.id),
    sku: r.sku,
    name: r.name,
    description: r.description,
    currency: r.currency,
    priceCents: r.price_cents,
    listPriceCents: r.list_price_cents,
    sale,
    version: Number(r.version),
    updatedAt: r.updated_at.toISOString(),
    validUntil: r.valid_until ? lateInstantIso(r.valid_until) : null,
  };
}

/**
 * One product at its effective price now (DB clock). Every read is also a sample of the DB clock,
 * bracketed by this process's monotonic clock: the fills keep the estimate fresh (db-clock.ts).
 */
export async function findProduct(db: Db, id: number): Promise<Product | null> {
  const before = dbClock.monotonic();
  const rows = await db.$queryRaw<ProductRow[]>`${SELECT_PRODUCT} WHERE p.id = ${id}`;
  const after = dbClock.monotonic();
  const row = rows[0];
  if (row?.db_now) dbClock.observe(before, row.db_now.getTime(), after);
  return row ? toProduct(row) : null;
}

/** Keyset pagination by id: stable under concurrent inserts, no OFFSET scans. */
export async function listProducts(db: Db, opts: { limit: number; afterId: number }): Promise<Product[]> {
  const rows = await db.$queryRaw<ProductRow[]>`${SELECT_PRODUCT}
    WHERE p.id > ${opts.afterId} ORDER BY p.id LIMIT ${opts.limit}`;
  return rows.map(toProduct);
}

/** Trace context of the request making a write; stored on the row for the change event (see migration 20261125020000). */
export interface WriteContext {
  traceparent?: string | null;
}

export async function setListPrice(db: Db, id: number, listPriceCents: number, ctx: WriteContext = {}): Promise<Product | null> {
  const rows = await db.$queryRaw<ProductRow[]>`
    WITH updated AS (
      UPDATE products SET list_price_cents = ${listPriceCents}, change_traceparent = ${ctx.traceparent ?? null}
      WHERE id = ${id} RETURNING *
    )
    SELECT p.id, p.sku, p.name, p.description, p.currency, p.list_price_cents, p.sale_price_cents,
           ${clampedInstant("p.sale_starts_at")} AS sale_starts_at, ${clampedInstant("p.sale_ends_at")} AS sale_ends_at,
           p.version, p.updated_at,
           product_effective_price_cents(p.*::products, now()) AS price_cents,
           product_next_price_boundary(p.*::products, now()) AS valid_until
    FROM updated p`;
  return rows[0] ? toProduct(rows[0]) : null;
}

export type DeleteProductResult = { kind: "deleted"; cartLinesRemoved: number } | { kind: "not_found" } | { kind: "in_orders" };

/**
 * Deletes a product. Its cart lines go with it (foreign key ON DELETE CASCADE; a trigger
 * notes each as unavailable in its cart: migration 20261126100000), exactly as for a raw
 * SQL DELETE. A product that appears in orders is refused: orders keep their lines.
 */
export async function deleteProduct(db: Db, id: number): Promise<DeleteProductResult> {
  try {
    // Both subqueries see the snapshot before the delete: the lines counted are the ones it removes.
    const [row] = await retryingConflicts(
      () => db.$queryRaw<{ deleted: bigint; in_carts: bigint }[]>`
        WITH gone AS (DELETE FROM products WHERE id = ${id} RETURNING id)
        SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT count(*) FROM cart_items WHERE product_id = ${id}) AS in_carts`,
    );
    if (!row || Number(row.deleted) === 0) return { kind: "not_found" };
    return { kind: "deleted", cartLinesRemoved: Number(row.in_carts) };
  } catch (err) {
    if (sqlState(err) === "23503") return { kind: "in_orders" };
    throw err;
  }
}

export interface NewProduct {
  sku: string;
  name: string;
  description: string;
  currency: string;
  listPriceCents: number;
  stock: number;
}

/** Inserts product + inventory in one statement; null when the SKU already exists. */
export async function createProduct(db: Db, p: NewProduct, ctx: WriteContext = {}): Promise<Product | null> {
  const rows = await db.$queryRaw<{ id: bigint }[]>`
    WITH inserted AS (
      INSERT INTO products (sku, name, description, currency, list_price_cents, change_traceparent)
      VALUES (${p.sku}, ${p.name}, ${p.description}, ${p.currency}, ${p.listPriceCents}, ${ctx.traceparent ?? null})
      ON CONFLICT (sku) DO NOTHING
      RETURNING id
    ), stock AS (
      INSERT INTO inventory (product_id, available) SELECT id, ${p.stock} FROM inserted
    )
    SELECT id FROM inserted`;
  const id = rows[0]?.id;
  return id === undefined ? null : findProduct(db, Number(id));
}

export interface PriceImportRow {
  sku: string;
  listPriceCents: number;
}

/** A committed change of one product: what a write-path eviction needs (the row's new version). */
export interface ProductChangeRef {
  id: number;
  version: number;
}

export interface PriceImportResult {
  received: number;
  updated: number;
  unchanged: number;
  unknownSkus: string[];
  /** The products this import changed, at their new versions (the admin path evicts them itself). */
  changed: ProductChangeRef[];
}

/**
 * One set-based statement for the whole file. Rows whose price is unchanged are not
 * touched (no version bump, no needless invalidation). The change reaches the cache through CDC
 * like any other write; the admin route also evicts `changed` itself (read-your-writes).
 */
export async function importListPrices(db: Db, rows: PriceImportRow[], ctx: WriteContext = {}): Promise<PriceImportResult> {
  const skus = rows.map((r) => r.sku);
  const prices = rows.map((r) => r.listPriceCents);
  // One statement: repeated whole if it loses a deadlock with a checkout locking the same products.
  const [result] = await retryingConflicts(
    () => db.$queryRaw<{ updated: bigint; known: string[]; ids: bigint[]; versions: bigint[] }[]>`
    WITH input AS (
      SELECT * FROM unnest(${skus}::text[], ${prices}::int[]) AS v(sku, price)
    ), updated AS (
      UPDATE products p SET list_price_cents = input.price, change_traceparent = ${ctx.traceparent ?? null}
      FROM input
      WHERE p.sku = input.sku AND p.list_price_cents IS DISTINCT FROM input.price
      RETURNING p.id, p.version
    )
    SELECT (SELECT count(*) FROM updated) AS updated,
           coalesce((SELECT array_agg(id) FROM updated), '{}') AS ids,
           coalesce((SELECT array_agg(version) FROM updated), '{}') AS versions,
           coalesce((SELECT array_agg(p.sku) FROM products p JOIN input ON input.sku = p.sku), '{}') AS known`,
  );
  const known = new Set(result?.known ?? []);
  const updated = Number(result?.updated ?? 0n);
  const unknownSkus = skus.filter((s) => !known.has(s));
  const versions = result?.versions ?? [];
  const changed = (result?.ids ?? []).map((id, i) => ({ id: Number(id), version: Number(versions[i]) }));
  return { received: rows.length, updated, unchanged: known.size - updated, unknownSkus, changed };
}

export class UnknownProductsError extends Error {
  readonly productIds: number[];
  constructor(productIds: number[]) {
    super(`unknown product ids: ${productIds.join(", ")}`);
    this.productIds = productIds;
  }
}

export interface SaleInput {
  productIds: number[];
  startsAt: Date;
  endsAt: Date;
  salePriceCents?: number;
  /** Alternative to salePriceCents: the sale price is list price minus this percentage, rounded down. */
  percentOff?: number;
}

/** Puts products on sale, all or none: an unknown id rolls the whole statement back. Returns the new versions. */
export async function setSale(db: Db, s: SaleInput, ctx: WriteContext = {}): Promise<ProductChangeRef[]> {
  return retryingConflicts(() =>
    db.$transaction(async (tx) => {
      const rows = await tx.$queryRaw<{ id: bigint; version: bigint }[]>`
      UPDATE products
      SET sale_price_cents = coalesce(${s.salePriceCents ?? null}::int,
                                      (list_price_cents * (100 - ${s.percentOff ?? 0}::int)) / 100),
          sale_starts_at = ${s.startsAt},
          sale_ends_at = ${s.endsAt},
          change_traceparent = ${ctx.traceparent ?? null}
      WHERE id = ANY(${s.productIds}::bigint[])
      RETURNING id, version`;
      const updated = rows.map((r) => ({ id: Number(r.id), version: Number(r.version) }));
      if (updated.length !== s.productIds.length) {
        const found = new Set(updated.map((u) => u.id));
        throw new UnknownProductsError(s.productIds.filter((id) => !found.has(id)));
      }
      return updated;
    }),
  );
}
