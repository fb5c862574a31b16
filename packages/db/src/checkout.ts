import { randomUUID } from "node:crypto";
import type { Principal } from "./carts.ts";
import type { Db } from "./client.ts";
import { retryingConflicts } from "./errors.ts";

export interface OrderLine {
  productId: number;
  quantity: number;
  unitPriceCents: number;
}

export interface PlacedOrder {
  id: string;
  /** Shown only to the order's owner (see findOrder). */
  cartId?: string;
  items: OrderLine[];
  totalCents: number;
  createdAt: string;
}

export type CheckoutOutcome =
  | {
      kind: "placed";
      order: PlacedOrder;
      replayed: boolean;
      /** Units left per product right after this order (absent for a replay): the stock gate's sync value. */
      stockAfter?: Map<number, number>;
    }
  | { kind: "price_changed"; items: { productId: number; seenPriceCents: number; currentPriceCents: number }[] }
  | { kind: "out_of_stock"; items: { productId: number; requested: number }[] }
  | { kind: "cart_empty" }
  | { kind: "cart_not_found" }
  | { kind: "idempotency_key_reused" };

/** What one checkout request is: the cart, who asks, and the Idempotency-Key they sent. */
export interface CheckoutRequest {
  cartId: string;
  principal: Principal;
  idempotencyKey: string;
}

/**
 * Idempotency keys are scoped per principal (README "Idempotency keys"): a signed-in
 * user's keys are theirs alone; an anonymous cart's keys belong to that cart (its id is
 * the anonymous shopper's capability). The same key from two principals never meets.
 */
export function idempotencyScope(req: Pick<CheckoutRequest, "cartId" | "principal">): string {
  return req.principal === null ? `cart:${req.cartId}` : `user:${req.principal}`;
}

/**
 * The cart id as Postgres prints it (lower case). Routes accept either case of the hex digits
 * (the same cart), but the key's scope, the stored order and the replay comparison use the
 * text: an upper-case id made the retry of a placed order 422 IDEMPOTENCY_KEY_REUSED.
 */
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
export async function placeOrder(db: Db, request: CheckoutRequest): Promise<CheckoutOutcome> {
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

/**
 * The stored outcome of an Idempotency-Key already used in the principal's scope (null:
 * never used there). The IETF Idempotency-Key draft's rule: a key reused for a different
 * request is refused (IDEMPOTENCY_KEY_REUSED), not answered with the old result. Here the
 * request is "check out this cart as it is now": a different cart, or the same cart
 * changed since the order (a line added, changed or removed: its revision moved on),
 * is a different request.
 */
export async function findIdempotentResult(db: Db, request: CheckoutRequest): Promise<CheckoutOutcome | null> {
  const req = canonical(request);
  const rows = await db.$queryRaw<
    { cart_id: string; cart_revision: bigint; revision_now: bigint | null; owner_now: string | null; response_body: PlacedOrder }[]
  >`
    SELECT k.cart_id::text, k.cart_revision, c.revision AS revision_now, c.user_id AS owner_now, k.response_body
    FROM idempotency_keys k LEFT JOIN carts c ON c.id = k.cart_id
    WHERE k.scope = ${idempotencyScope(req)} AND k.key = ${req.idempotencyKey}`;
  const row = rows[0];
  if (!row) return null;
  // An anonymous cart's keys are its holder's only while it is anonymous: once a user has
  // claimed it, the anonymous id opens nothing, stored answers included.
  if (req.principal === null && row.owner_now !== null) return { kind: "cart_not_found" };
  if (row.cart_id !== req.cartId) return { kind: "idempotency_key_reused" };
  if (row.revision_now !== null && BigInt(row.revision_now) !== BigInt(row.cart_revision)) return { kind: "idempotency_key_reused" };
  return { kind: "placed", order: row.response_body, replayed: true };
}

/** The principal's cart lines without locks, for the stock gate that runs before the transaction (none if not theirs). */
export async function cartLines(db: Db, cartId: string, principal: Principal): Promise<{ productId: number; quantity: number }[]> {
  const rows = await db.$queryRaw<{ product_id: bigint; quantity: number }[]>`
    SELECT ci.product_id, ci.quantity FROM cart_items ci JOIN carts c ON c.id = ci.cart_id
    WHERE ci.cart_id = ${cartId}::uuid AND c.user_id IS NOT DISTINCT FROM ${principal}::text
    ORDER BY ci.product_id`;
  return rows.map((r) => ({ productId: Number(r.product_id), quantity: r.quantity }));
}

export async function availableStock(db: Db, productId: number): Promise<number> {
  const rows = await db.$queryRaw<{ available: number }[]>`SELECT available FROM inventory WHERE product_id = ${productId}`;
  return rows[0]?.available ?? 0;
}
