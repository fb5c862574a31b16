import type { PlacedOrder } from "./checkout.ts";
import type { Db } from "./client.ts";

export interface CartLine {
  productId: number;
  quantity: number;
  /** The price the shopper saw when adding the line; checkout insists it still holds. */
  priceCentsSeen: number;
  versionSeen: number;
}

export interface Cart {
  id: string;
  userId: string | null;
  items: CartLine[];
}

export async function createCart(db: Db, userId: string | null): Promise<string> {
  const [row] = await db.$queryRaw<{ id: string }[]>`INSERT INTO carts (user_id) VALUES (${userId}) RETURNING id::text`;
  if (!row) throw new Error("cart insert returned no row");
  return row.id;
}

export type AddItemResult = "ok" | "cart_not_found" | "product_not_found";

/**
 * Adds (or replaces) a line, recording the effective price and version the shopper
 * sees now. Re-adding a line after PRICE_CHANGED is how a shopper re-confirms.
 */
export async function upsertCartItem(db: Db, cartId: string, productId: number, quantity: number): Promise<AddItemResult> {
  const rows = await db.$queryRaw<{ cart_found: boolean; product_found: boolean; upserted: boolean }[]>`
    WITH cart AS (SELECT id FROM carts WHERE id = ${cartId}::uuid),
         product AS (SELECT id, product_effective_price_cents(p, now()) AS price, version FROM products p WHERE id = ${productId}),
         upserted AS (
           INSERT INTO cart_items (cart_id, product_id, quantity, price_cents_seen, version_seen)
           SELECT cart.id, product.id, ${quantity}, product.price, product.version FROM cart, product
           ON CONFLICT (cart_id, product_id) DO UPDATE
             SET quantity = EXCLUDED.quantity, price_cents_seen = EXCLUDED.price_cents_seen,
                 version_seen = EXCLUDED.version_seen, added_at = now()
           RETURNING 1
         )
    SELECT EXISTS (SELECT 1 FROM cart) AS cart_found, EXISTS (SELECT 1 FROM product) AS product_found,
           EXISTS (SELECT 1 FROM upserted) AS upserted`;
  const r = rows[0];
  if (!r?.cart_found) return "cart_not_found";
  if (!r.product_found) return "product_not_found";
  return "ok";
}

export async function findCart(db: Db, cartId: string): Promise<Cart | null> {
  const carts = await db.$queryRaw<{ id: string; user_id: string | null }[]>`
    SELECT id::text, user_id FROM carts WHERE id = ${cartId}::uuid`;
  const cart = carts[0];
  if (!cart) return null;
  const lines = await db.$queryRaw<{ product_id: bigint; quantity: number; price_cents_seen: number; version_seen: bigint }[]>`
    SELECT product_id, quantity, price_cents_seen, version_seen
    FROM cart_items WHERE cart_id = ${cartId}::uuid ORDER BY product_id`;
  return {
    id: cart.id,
    userId: cart.user_id,
    items: lines.map((l) => ({
      productId: Number(l.product_id),
      quantity: l.quantity,
      priceCentsSeen: l.price_cents_seen,
      versionSeen: Number(l.version_seen),
    })),
  };
}

export async function findOrder(db: Db, orderId: string): Promise<PlacedOrder | null> {
  const orders = await db.$queryRaw<{ id: string; cart_id: string; total_cents: bigint; created_at: Date }[]>`
    SELECT id::text, cart_id::text, total_cents, created_at FROM orders WHERE id = ${orderId}::uuid`;
  const o = orders[0];
  if (!o) return null;
  const items = await db.$queryRaw<{ product_id: bigint; quantity: number; unit_price_cents: number }[]>`
    SELECT product_id, quantity, unit_price_cents FROM order_items WHERE order_id = ${orderId}::uuid ORDER BY product_id`;
  return {
    id: o.id,
    cartId: o.cart_id,
    totalCents: Number(o.total_cents),
    createdAt: o.created_at.toISOString(),
    items: items.map((i) => ({ productId: Number(i.product_id), quantity: i.quantity, unitPriceCents: i.unit_price_cents })),
  };
}
