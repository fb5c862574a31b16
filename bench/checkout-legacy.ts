/**
 * The checkout of main before issue 11 (an interactive Prisma transaction: claim the key,
 * lock the cart, FOR SHARE on the products, decrement, write, COMMIT: the inventory row lock
 * held across several round trips), kept only as the benchmark's "today's flow" baseline.
 * The commit-time price trigger of migration 20261127010000 applies to it too.
 */
import { randomUUID } from "node:crypto";
import {
  type CheckoutOutcome,
  type CheckoutRequest,
  type Db,
  findIdempotentResult,
  idempotencyScope,
  type OrderLine,
  type PlacedOrder,
} from "@flashsale/db";
import { retryingConflicts } from "@flashsale/db/errors";

function canonical(req: CheckoutRequest): CheckoutRequest {
  return { ...req, cartId: req.cartId.toLowerCase() };
}

/** Another request with the same Idempotency-Key holds (held) the claim. */
class ClaimLost extends Error {}

/** Thrown inside the transaction to roll it back with a business outcome. */
class Abort extends Error {
  readonly outcome: CheckoutOutcome;
  constructor(outcome: CheckoutOutcome) {
    super(outcome.kind);
    this.outcome = outcome;
  }
}

interface LineRow {
  product_id: bigint;
  quantity: number;
  price_cents_seen: number;
  price_now: number;
  /** Next sale start/end after the transaction's start, if any. */
  boundary: Date | null;
}

/** A sale started or ended while the transaction ran: the price read at its start is no longer the one at commit. */
class BoundaryCrossed extends Error {}
const BOUNDARY_MARGIN_MS = 100;
/** Deadlocks (e.g. with a bulk import locking the same products in another order) and serialization failures are retried. */
const MAX_ATTEMPTS = 3;

/**
 * The checkout invariant (docs/architecture.md#checkout-invariant) in one short transaction:
 *  1. claim the Idempotency-Key in the principal's scope (a concurrent duplicate blocks
 *     on the unique index until we finish, then replays our stored result; callers check
 *     for a finished replay first, see findIdempotentResult, so replays cost no
 *     transaction), then lock the cart row if it belongs to the principal (ownership is
 *     decided under the lock, so a concurrent claim or a second checkout of the same cart
 *     is ordered before or after us, never in between);
 *  2. read each line's effective price at the DB's clock, holding FOR SHARE row
 *     locks on the products (in id order) only until this transaction ends, so a
 *     price cannot change between the check and the commit;
 *  3. any price differing from what the cart saw -> roll back, PRICE_CHANGED;
 *  4. decrement stock with conditional UPDATEs (in id order: no deadlocks);
 *     any line short -> roll back, OUT_OF_STOCK;
 *  5. write order + items at the re-validated prices, store the result under the
 *     key and consume the cart, in one statement.
 * No network call happens while the transaction is open.
 */
export async function legacyPlaceOrder(db: Db, request: CheckoutRequest): Promise<CheckoutOutcome> {
  const req = canonical(request);
  // A deadlock or serialization failure rolled the transaction back as a whole, so trying again is safe.
  return retryingConflicts(() => placeOrderOnce(db, req), MAX_ATTEMPTS);
}

async function placeOrderOnce(db: Db, req: CheckoutRequest): Promise<CheckoutOutcome> {
  const { cartId, principal, idempotencyKey } = req;
  const scope = idempotencyScope(req);
  const orderId = randomUUID();
  const createdAt = new Date();
  try {
    return await db.$transaction(
      async (tx) => {
        // A key already used (or in use) in this scope conflicts here; we then wait for
        // that transaction on the unique index and replay its result.
        const claimed = await tx.$executeRaw`
          INSERT INTO idempotency_keys (scope, key, cart_id, order_id, response_body)
          VALUES (${scope}, ${idempotencyKey}, ${cartId}::uuid, ${orderId}::uuid, '{}'::jsonb)
          ON CONFLICT (scope, key) DO NOTHING`;
        if (claimed === 0) throw new ClaimLost();

        // Lock the cart if it is the principal's. Lines change only under this row lock
        // (add-item locks it too; the revision trigger updates it), so the lines read
        // next are exactly the ones this order consumes.
        const [cart] = await tx.$queryRaw<{ user_id: string | null; revision: bigint }[]>`
          SELECT user_id, revision FROM carts
          WHERE id = ${cartId}::uuid AND user_id IS NOT DISTINCT FROM ${principal}::text
          FOR NO KEY UPDATE`;
        if (!cart) throw new Abort({ kind: "cart_not_found" });

        const lines = await tx.$queryRaw<LineRow[]>`
          SELECT ci.product_id, ci.quantity, ci.price_cents_seen,
                 product_effective_price_cents(p, now()) AS price_now,
                 product_next_price_boundary(p, now()) AS boundary
          FROM cart_items ci JOIN products p ON p.id = ci.product_id
          WHERE ci.cart_id = ${cartId}::uuid
          ORDER BY ci.product_id
          FOR SHARE OF p`;
        if (lines.length === 0) throw new Abort({ kind: "cart_empty" });

        const changed = lines.filter((l) => l.price_now !== l.price_cents_seen);
        if (changed.length > 0) {
          throw new Abort({
            kind: "price_changed",
            items: changed.map((l) => ({
              productId: Number(l.product_id),
              seenPriceCents: l.price_cents_seen,
              currentPriceCents: l.price_now,
            })),
          });
        }

        const stockAfter = new Map<number, number>();
        for (const l of lines) {
          const [left] = await tx.$queryRaw<{ available: number }[]>`
            UPDATE inventory SET available = available - ${l.quantity}
            WHERE product_id = ${l.product_id} AND available >= ${l.quantity}
            RETURNING available`;
          if (!left) {
            throw new Abort({ kind: "out_of_stock", items: [{ productId: Number(l.product_id), requested: l.quantity }] });
          }
          stockAfter.set(Number(l.product_id), left.available);
        }

        const items: OrderLine[] = lines.map((l) => ({
          productId: Number(l.product_id),
          quantity: l.quantity,
          unitPriceCents: l.price_now,
        }));
        const totalCents = items.reduce((sum, i) => sum + i.quantity * i.unitPriceCents, 0);
        const order: PlacedOrder = { id: orderId, cartId, items, totalCents, createdAt: createdAt.toISOString() };
        // Each consumed line bumps the cart's revision once (trigger cart_items_bump_cart_revision):
        // a later replay of this key is honoured only while the cart is still at this revision.
        const revisionAfter = BigInt(cart.revision) + BigInt(lines.length);
        // All writes in one statement: fewer round trips while the stock row is locked.
        // It returns the DB clock after the writes: prices were evaluated at now() (the
        // transaction start); if a sale boundary fell in between, they may be wrong at commit.
        const [written] = await tx.$queryRaw<{ at: Date }[]>`
          WITH o AS (
            INSERT INTO orders (id, cart_id, user_id, total_cents, created_at)
            VALUES (${orderId}::uuid, ${cartId}::uuid, ${cart.user_id}, ${totalCents}, ${createdAt})
          ), i AS (
            INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
            SELECT ${orderId}::uuid, * FROM unnest(${items.map((i) => i.productId)}::bigint[],
                                                  ${items.map((i) => i.quantity)}::int[],
                                                  ${items.map((i) => i.unitPriceCents)}::int[])
          ), k AS (
            UPDATE idempotency_keys SET response_body = ${JSON.stringify(order)}::jsonb, cart_revision = ${revisionAfter}
            WHERE scope = ${scope} AND key = ${idempotencyKey}
          ), d AS (
            -- The lines this order took (all of them: the cart row lock keeps them stable).
            DELETE FROM cart_items ci
            USING unnest(${items.map((i) => i.productId)}::bigint[], ${items.map((i) => i.quantity)}::int[]) AS took(product_id, quantity)
            WHERE ci.cart_id = ${cartId}::uuid AND ci.product_id = took.product_id AND ci.quantity = took.quantity
          )
          SELECT clock_timestamp() AS at`;
        // COMMIT is one more round trip away: a boundary inside that margin counts as crossed.
        const commitBy = (written?.at ?? new Date()).getTime() + BOUNDARY_MARGIN_MS;
        if (lines.some((l) => l.boundary !== null && l.boundary.getTime() <= commitBy)) throw new BoundaryCrossed();
        return { kind: "placed", order, replayed: false, stockAfter } as CheckoutOutcome;
      },
      { maxWait: 2_000, timeout: 5_000 },
    );
  } catch (err) {
    if (err instanceof ClaimLost) {
      // The concurrent request with our key has committed by now (we waited on its row).
      return (await findIdempotentResult(db, req)) ?? { kind: "idempotency_key_reused" };
    }
    if (err instanceof Abort) return err.outcome;
    if (err instanceof BoundaryCrossed) return priceChangedNow(db, cartId);
    throw err;
  }
}

/** After a rolled-back transaction that crossed a sale boundary: the lines whose price now differs. */
async function priceChangedNow(db: Db, cartId: string): Promise<CheckoutOutcome> {
  const rows = await db.$queryRaw<{ product_id: bigint; price_cents_seen: number; price_now: number }[]>`
    SELECT ci.product_id, ci.price_cents_seen,
           product_effective_price_cents(p, clock_timestamp() + ${BOUNDARY_MARGIN_MS} * interval '1 millisecond') AS price_now
    FROM cart_items ci JOIN products p ON p.id = ci.product_id WHERE ci.cart_id = ${cartId}::uuid`;
  return {
    kind: "price_changed",
    items: rows
      .filter((r) => r.price_now !== r.price_cents_seen)
      .map((r) => ({ productId: Number(r.product_id), seenPriceCents: r.price_cents_seen, currentPriceCents: r.price_now })),
  };
}
