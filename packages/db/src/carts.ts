import { MAX_CHECKOUT_LINES, MAX_CHECKOUT_UNITS, type PlacedOrder } from "./checkout.ts";
import type { Db } from "./client.ts";

export interface CartLine {
  productId: number;
  quantity: number;
  /** The price the shopper saw when adding the line; checkout insists it still holds. */
  priceCentsSeen: number;
  versionSeen: number;
}

/** A line removed because its product was deleted (migration 20261126100000). */
export interface UnavailableLine {
  productId: number;
  quantity: number;
  priceCentsSeen: number;
  reason: "PRODUCT_DELETED";
  removedAt: string;
}

export interface Cart {
  id: string;
  userId: string | null;
  items: CartLine[];
  unavailableItems: UnavailableLine[];
}

/**
 * Who is asking: the gateway-set X-User-Id, or null for an anonymous shopper.
 * Ownership rules (README "Ownership"):
 *  - a cart created by a user belongs to that user; any other principal, anonymous
 *    included, gets "not found" (no existence leak);
 *  - a cart created anonymously is a bearer capability: whoever holds its id may use it,
 *    until the first request with a user id claims it for that user (claimCart);
 *  - an order belongs to the user of its cart at checkout; an anonymous order is readable
 *    with its id alone, and never shows a cart id.
 */
export type Principal = string | null;

export async function createCart(db: Db, owner: Principal): Promise<string> {
  const [row] = await db.$queryRaw<{ id: string }[]>`INSERT INTO carts (user_id) VALUES (${owner}) RETURNING id::text`;
  if (!row) throw new Error("cart insert returned no row");
  return row.id;
}

/**
 * The first request with a user id on an anonymous cart makes it that user's (one
 * conditional UPDATE: of two users racing, exactly one wins; the other then sees a cart
 * that is not theirs). A no-op for anonymous requests and for carts already owned.
 */
export async function claimCart(db: Db, cartId: string, principal: Principal): Promise<void> {
  if (principal === null) return;
  await db.$executeRaw`UPDATE carts SET user_id = ${principal} WHERE id = ${cartId}::uuid AND user_id IS NULL`;
}

export type AddItemResult = "ok" | "cart_not_found" | "product_not_found" | "cart_full" | "too_many_units";

/**
 * Distinct products a cart may hold (through the API; raw SQL is not limited, the checkout
 * refuses such a cart: MAX_CHECKOUT_LINES). Without a bound one anonymous cart of 9,000 lines
 * made a checkout hold stock-gate reservations on every one of them for seconds (everyone else:
 * OUT_OF_STOCK) and run a transaction past its 5 s limit while holding their inventory rows,
 * and one GET of the cart fired 9,000 price lookups at once.
 */
export const MAX_CART_LINES = MAX_CHECKOUT_LINES;
/** Units (sum of quantities) a cart may hold; the checkout refuses more (MAX_CHECKOUT_UNITS). */
export const MAX_CART_UNITS = MAX_CHECKOUT_UNITS;

/**
 * Adds (or replaces) a line, recording the effective price and version the shopper
 * sees now. Re-adding a line after PRICE_CHANGED is how a shopper re-confirms.
 * The cart must belong to `principal` (call claimCart first); its row is locked for the
 * statement, so a concurrent claim or checkout is ordered before or after it, never between.
 */
export async function upsertCartItem(
  db: Db,
  cartId: string,
  principal: Principal,
  productId: number,
  quantity: number,
): Promise<AddItemResult> {
  // The cart's row is locked by a statement of its own first: the capacity below is then counted
  // with a snapshot taken after the lock, i.e. after every concurrent add to this cart committed.
  // (Locked inside the same statement, the count used the statement's snapshot from before the
  // lock wait: 35 concurrent adds took a 95-line cart to 104 lines, which no route can shrink,
  // and 6 concurrent adds of 400 units made 2,000 units.)
  const rows = await db.$transaction(async (tx) => {
    await tx.$queryRaw`SELECT 1 FROM carts WHERE id = ${cartId}::uuid AND user_id IS NOT DISTINCT FROM ${principal}::text FOR NO KEY UPDATE`;
    return tx.$queryRaw<{ cart_found: boolean; product_found: boolean; upserted: boolean; too_many_lines: boolean | null }[]>`
    WITH cart AS (
           SELECT id FROM carts WHERE id = ${cartId}::uuid AND user_id IS NOT DISTINCT FROM ${principal}::text
           FOR NO KEY UPDATE
         ),
         product AS (SELECT id, product_effective_price_cents(p, now()) AS price, version FROM products p WHERE id = ${productId}),
         -- The cart as it would be after this change: beyond MAX_CART_LINES lines or MAX_CART_UNITS
         -- units it is refused (counted after the lock above; the checkout enforces both limits too).
         capacity AS (
           SELECT count(*) FILTER (WHERE ci.product_id <> ${productId}) + 1 > ${MAX_CART_LINES} AS too_many_lines,
                  coalesce(sum(ci.quantity) FILTER (WHERE ci.product_id <> ${productId}), 0) + ${quantity} > ${MAX_CART_UNITS} AS too_many_units
           FROM cart_items ci, cart WHERE ci.cart_id = cart.id
         ),
         upserted AS (
           INSERT INTO cart_items (cart_id, product_id, quantity, price_cents_seen, version_seen)
           SELECT cart.id, product.id, ${quantity}, product.price, product.version FROM cart, product, capacity
           WHERE NOT capacity.too_many_lines AND NOT capacity.too_many_units
           ON CONFLICT (cart_id, product_id) DO UPDATE
             SET quantity = EXCLUDED.quantity, price_cents_seen = EXCLUDED.price_cents_seen,
                 version_seen = EXCLUDED.version_seen, added_at = now()
           RETURNING 1
         )
    SELECT EXISTS (SELECT 1 FROM cart) AS cart_found, EXISTS (SELECT 1 FROM product) AS product_found,
           EXISTS (SELECT 1 FROM upserted) AS upserted, (SELECT too_many_lines FROM capacity) AS too_many_lines`;
  });
  const r = rows[0];
  if (!r?.cart_found) return "cart_not_found";
  if (!r.product_found) return "product_not_found";
  if (!r.upserted) return r.too_many_lines ? "cart_full" : "too_many_units";
  return "ok";
}

/** The cart if it belongs to `principal` (see Principal), else null. */
export async function findCart(db: Db, cartId: string, principal: Principal): Promise<Cart | null> {
  const carts = await db.$queryRaw<{ id: string; user_id: string | null }[]>`
    SELECT id::text, user_id FROM carts WHERE id = ${cartId}::uuid AND user_id IS NOT DISTINCT FROM ${principal}::text`;
  const cart = carts[0];
  if (!cart) return null;
  const [lines, gone] = await Promise.all([
    db.$queryRaw<{ product_id: bigint; quantity: number; price_cents_seen: number; version_seen: bigint }[]>`
      SELECT product_id, quantity, price_cents_seen, version_seen
      FROM cart_items WHERE cart_id = ${cartId}::uuid ORDER BY product_id`,
    db.$queryRaw<{ product_id: bigint; quantity: number; price_cents_seen: number; removed_at: Date }[]>`
      SELECT product_id, quantity, price_cents_seen, removed_at
      FROM cart_unavailable_items WHERE cart_id = ${cartId}::uuid ORDER BY product_id`,
  ]);
  return {
    id: cart.id,
    userId: cart.user_id,
    items: lines.map((l) => ({
      productId: Number(l.product_id),
      quantity: l.quantity,
      priceCentsSeen: l.price_cents_seen,
      versionSeen: Number(l.version_seen),
    })),
    unavailableItems: gone.map((g) => ({
      productId: Number(g.product_id),
      quantity: g.quantity,
      priceCentsSeen: g.price_cents_seen,
      reason: "PRODUCT_DELETED" as const,
      removedAt: g.removed_at.toISOString(),
    })),
  };
}

/**
 * The order if `principal` may read it: a user's order only by that user; an anonymous
 * order by whoever holds its id. The cart id is shown only to the order's user (for an
 * anonymous order it would hand the cart to anyone the order link was shared with).
 */
export async function findOrder(db: Db, orderId: string, principal: Principal): Promise<PlacedOrder | null> {
  const orders = await db.$queryRaw<{ id: string; cart_id: string; user_id: string | null; total_cents: bigint; created_at: Date }[]>`
    SELECT id::text, cart_id::text, user_id, total_cents, created_at FROM orders
    WHERE id = ${orderId}::uuid AND (user_id IS NULL OR user_id = ${principal}::text)`;
  const o = orders[0];
  if (!o) return null;
  const items = await db.$queryRaw<{ product_id: bigint; quantity: number; unit_price_cents: number }[]>`
    SELECT product_id, quantity, unit_price_cents FROM order_items WHERE order_id = ${orderId}::uuid ORDER BY product_id`;
  return {
    id: o.id,
    ...(o.user_id !== null && o.user_id === principal ? { cartId: o.cart_id } : {}),
    totalCents: Number(o.total_cents),
    createdAt: o.created_at.toISOString(),
    items: items.map((i) => ({ productId: Number(i.product_id), quantity: i.quantity, unitPriceCents: i.unit_price_cents })),
  };
}
