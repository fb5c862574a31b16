/**
 * The benchmark's baseline: the textbook checkout that locks rows with
 * SELECT ... FOR UPDATE, checks price and stock in the application, then writes.
 * Correct, but every buyer of a hot SKU queues on the same row lock for the whole
 * transaction (including the round trips to the app).
 */
import { randomUUID } from "node:crypto";
import type { Db } from "@flashsale/db";

export type NaiveOutcome = "placed" | "price_changed" | "out_of_stock" | "cart_empty";

export async function naiveCheckout(db: Db, cartId: string): Promise<NaiveOutcome> {
  return db.$transaction(
    async (tx) => {
      const lines = await tx.$queryRaw<
        { product_id: bigint; quantity: number; price_cents_seen: number; price_now: number; available: number }[]
      >`
        SELECT ci.product_id, ci.quantity, ci.price_cents_seen,
               product_effective_price_cents(p, now()) AS price_now, i.available
        FROM cart_items ci JOIN products p ON p.id = ci.product_id JOIN inventory i ON i.product_id = p.id
        WHERE ci.cart_id = ${cartId}::uuid ORDER BY ci.product_id
        FOR UPDATE OF p, i`;
      if (lines.length === 0) return "cart_empty";
      if (lines.some((l) => l.price_now !== l.price_cents_seen)) return "price_changed";
      if (lines.some((l) => l.available < l.quantity)) return "out_of_stock";
      for (const l of lines) {
        await tx.$executeRaw`UPDATE inventory SET available = ${l.available - l.quantity} WHERE product_id = ${l.product_id}`;
      }
      const orderId = randomUUID();
      const total = lines.reduce((s, l) => s + l.quantity * l.price_now, 0);
      await tx.$executeRaw`INSERT INTO orders (id, cart_id, total_cents) VALUES (${orderId}::uuid, ${cartId}::uuid, ${total})`;
      for (const l of lines) {
        await tx.$executeRaw`INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
                             VALUES (${orderId}::uuid, ${l.product_id}, ${l.quantity}, ${l.price_now})`;
      }
      await tx.$executeRaw`DELETE FROM cart_items WHERE cart_id = ${cartId}::uuid`;
      return "placed";
    },
    { maxWait: 10_000, timeout: 30_000 },
  );
}
