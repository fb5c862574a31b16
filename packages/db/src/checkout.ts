import { randomUUID } from "node:crypto";
import type { Principal } from "./carts.ts";
import type { Db } from "./client.ts";
import { classifyDbError, sqlState } from "./errors.ts";

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
  /** More lines or units than a checkout accepts (a cart written around the API's limits). */
  | { kind: "cart_too_large"; maxLines: number; maxUnits: number }
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

/** Distinct products a checkout accepts in one cart (the API refuses more lines: carts.ts MAX_CART_LINES). */
export const MAX_CHECKOUT_LINES = 100;
/** Units a checkout accepts in one cart (the API refuses more: carts.ts MAX_CART_UNITS). */
export const MAX_CHECKOUT_UNITS = 1_000;

/** Deadlocks, serialization failures and a sale boundary crossed before COMMIT (FS409) roll a batch back as a whole: tried again. */
const MAX_ATTEMPTS = 3;

/** SQLSTATE of the commit-time price check (migration 20261127010000, trigger order_items_price_at_commit). */
export const PRICE_AT_COMMIT_SQLSTATE = "FS409";

type BatchAnswer = CheckoutOutcome | { kind: "claim_lost" } | { kind: "cart_too_large"; lines: number; units: number };

interface RawPlaced {
  kind: "placed";
  order: PlacedOrder;
  stockAfter: Record<string, number>;
}

export interface PlaceOptions {
  /** Called before a rolled-back batch is tried again (deadlock, serialization failure, FS409). */
  onRetry?: (err: unknown) => void;
  maxAttempts?: number;
}

function retryable(err: unknown): boolean {
  return classifyDbError(err) === "retryable" || sqlState(err) === PRICE_AT_COMMIT_SQLSTATE;
}

/**
 * Places a batch of checkouts in ONE statement and one implicit transaction
 * (checkout_place_orders, migration 20261127010000; docs/architecture.md#checkout-invariant):
 * no lock is held across a network round trip, and buyers arriving together share the
 * transaction, its hot-row lock and its commit. Per request, in arrival order: claim the
 * Idempotency-Key, lock the principal's cart, check every line's price at the DB clock and its
 * stock under the row lock, then decrement (one set-based UPDATE), consume the cart, write the
 * order and the key's stored answer. A refused request writes nothing and does not fail the
 * others. The commit-time trigger re-checks each line's price when the transaction commits.
 */
export async function placeOrders(db: Db, requests: CheckoutRequest[], opts: PlaceOptions = {}): Promise<CheckoutOutcome[]> {
  if (requests.length === 0) return [];
  const reqs = requests.map(canonical);
  const payload = JSON.stringify(
    reqs.map((r) => ({
      scope: idempotencyScope(r),
      key: r.idempotencyKey,
      cartId: r.cartId,
      principal: r.principal,
      orderId: randomUUID(),
    })),
  );
  const attempts = opts.maxAttempts ?? MAX_ATTEMPTS;
  let answers: BatchAnswer[];
  for (let attempt = 1; ; attempt++) {
    try {
      const [row] = await db.$queryRaw<{ answers: string }[]>`
        SELECT checkout_place_orders(${payload}::jsonb, ${MAX_CHECKOUT_LINES}::int, ${MAX_CHECKOUT_UNITS}::int)::text AS answers`;
      answers = JSON.parse(row?.answers ?? "[]") as BatchAnswer[];
      break;
    } catch (err) {
      if (attempt < attempts && retryable(err)) {
        opts.onRetry?.(err);
        continue;
      }
      // Still crossing a sale boundary at COMMIT after the retries (a batch slower than the
      // function's 50 ms margin, each time): each buyer gets PRICE_CHANGED, nothing was written.
      if (sqlState(err) === PRICE_AT_COMMIT_SQLSTATE) return Promise.all(reqs.map((r) => priceChangedNow(db, r.cartId)));
      // One request's failure (a bug, a bad value) must not fail the buyers it was batched with.
      if (reqs.length > 1 && !retryable(err) && classifyDbError(err) !== "busy" && classifyDbError(err) !== "unavailable") {
        return Promise.all(reqs.map(async (r) => (await placeOrders(db, [r], opts))[0] as CheckoutOutcome));
      }
      throw err;
    }
  }
  return Promise.all(
    reqs.map(async (req, i): Promise<CheckoutOutcome> => {
      const a = answers[i];
      if (!a) throw new Error(`checkout_place_orders answered ${answers.length} outcomes for ${reqs.length} requests`);
      if (a.kind === "claim_lost") {
        // The request holding our key has committed by now (we waited on its row) or is ours, earlier
        // in this batch. Nothing stored: it was refused and wrote nothing, so this one is tried once more.
        const stored = await findIdempotentResult(db, req);
        if (stored) return stored;
        if ((opts.maxAttempts ?? MAX_ATTEMPTS) <= 1) return { kind: "idempotency_key_reused" };
        return placeOrder(db, req, { ...opts, maxAttempts: 1 });
      }
      if (a.kind === "cart_too_large") return { kind: "cart_too_large", maxLines: MAX_CHECKOUT_LINES, maxUnits: MAX_CHECKOUT_UNITS };
      if (a.kind === "placed") {
        const raw = a as unknown as RawPlaced;
        const stockAfter = new Map(Object.entries(raw.stockAfter).map(([k, v]) => [Number(k), v] as const));
        return { kind: "placed", order: raw.order, replayed: false, stockAfter };
      }
      return a;
    }),
  );
}

/** After a batch refused at COMMIT by the price trigger: the cart's lines whose price differs now or within the margin. */
async function priceChangedNow(db: Db, cartId: string): Promise<CheckoutOutcome> {
  const rows = await db.$queryRaw<{ product_id: bigint; price_cents_seen: number; price_soon: number }[]>`
    SELECT ci.product_id, ci.price_cents_seen,
           product_effective_price_cents(p, clock_timestamp() + interval '50 milliseconds') AS price_soon
    FROM cart_items ci JOIN products p ON p.id = ci.product_id WHERE ci.cart_id = ${cartId}::uuid ORDER BY ci.product_id`;
  return {
    kind: "price_changed",
    items: rows
      .filter((r) => r.price_soon !== r.price_cents_seen)
      .map((r) => ({ productId: Number(r.product_id), seenPriceCents: r.price_cents_seen, currentPriceCents: r.price_soon })),
  };
}

/** One checkout: a batch of one (see placeOrders). */
export async function placeOrder(db: Db, request: CheckoutRequest, opts: PlaceOptions = {}): Promise<CheckoutOutcome> {
  const [outcome] = await placeOrders(db, [request], opts);
  if (!outcome) throw new Error("no checkout outcome");
  return outcome;
}

export interface OrderPlacer {
  /** `laneKey`: the cart's lowest product id (precheckCheckout), so buyers of one SKU share a lane. */
  place(request: CheckoutRequest, laneKey?: number | null): Promise<CheckoutOutcome>;
}

export interface GroupCommitOptions {
  /** Batches in flight at once (each is one statement on one pooled connection). */
  lanes: number;
  /** Checkouts combined into one batch at most. */
  maxBatch: number;
  onRetry?: (err: unknown) => void;
  /** Called with each batch's size (metrics). */
  onBatch?: (size: number) => void;
}

/**
 * Group commit (docs/architecture.md#checkout-invariant): checkouts that arrive while `lanes`
 * batches are in flight wait for the next free lane and go together, up to `maxBatch`, in one
 * placeOrders call. An idle process sends a checkout at once (no timer, no added latency);
 * under a rush the batch grows by itself, and one hot row is locked once per batch instead of
 * once per buyer. Bounding how many checkouts may wait is the caller's (the checkout bulkhead).
 */
export function groupCommit(db: Db, opts: GroupCommitOptions): OrderPlacer {
  interface Waiting {
    req: CheckoutRequest;
    resolve: (o: CheckoutOutcome) => void;
    reject: (e: unknown) => void;
  }
  const lanes = Array.from({ length: Math.max(1, opts.lanes) }, () => ({ queue: [] as Waiting[], busy: false }));
  let roundRobin = 0;
  const pump = (lane: (typeof lanes)[number]) => {
    if (lane.busy || lane.queue.length === 0) return;
    const batch = lane.queue.splice(0, opts.maxBatch);
    lane.busy = true;
    opts.onBatch?.(batch.length);
    placeOrders(
      db,
      batch.map((w) => w.req),
      opts.onRetry ? { onRetry: opts.onRetry } : {},
    )
      .then(
        (outcomes) => {
          for (const [i, w] of batch.entries()) w.resolve(outcomes[i] as CheckoutOutcome);
        },
        (err: unknown) => {
          for (const w of batch) w.reject(err);
        },
      )
      .finally(() => {
        lane.busy = false;
        pump(lane);
      });
  };
  return {
    // One batch in flight per lane. Buyers of the same (first) SKU share a lane: they batch
    // together instead of two lanes queueing on the same hot row; other SKUs run in parallel.
    place: (req, laneKey) =>
      new Promise<CheckoutOutcome>((resolve, reject) => {
        const index = laneKey == null ? roundRobin++ % lanes.length : Math.abs(laneKey) % lanes.length;
        const lane = lanes[index] as (typeof lanes)[number];
        lane.queue.push({ req, resolve, reject });
        pump(lane);
      }),
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
  return (await precheckCheckout(db, request)).prior;
}

interface StoredKeyRow {
  cart_id: string | null;
  cart_revision: bigint | null;
  revision_now: bigint | null;
  owner_now: string | null;
  response_body: PlacedOrder | null;
  lane_key: bigint | null;
}

/**
 * What the checkout flow asks before placing, in one query: the stored outcome of the key
 * (findIdempotentResult's rules) and the cart's lowest product id, group commit's lane key.
 */
export async function precheckCheckout(
  db: Db,
  request: CheckoutRequest,
): Promise<{ prior: CheckoutOutcome | null; laneKey: number | null }> {
  const req = canonical(request);
  const rows = await db.$queryRaw<StoredKeyRow[]>`
    SELECT k.cart_id::text, k.cart_revision, c.revision AS revision_now, c.user_id AS owner_now, k.response_body,
           (SELECT min(ci.product_id) FROM cart_items ci WHERE ci.cart_id = ${req.cartId}::uuid) AS lane_key
    FROM (SELECT 1) AS one
    LEFT JOIN idempotency_keys k ON k.scope = ${idempotencyScope(req)} AND k.key = ${req.idempotencyKey}
    LEFT JOIN carts c ON c.id = k.cart_id`;
  const row = rows[0];
  const laneKey = row?.lane_key == null ? null : Number(row.lane_key);
  if (!row || row.cart_id === null) return { prior: null, laneKey };
  // An anonymous cart's keys are its holder's only while it is anonymous: once a user has
  // claimed it, the anonymous id opens nothing, stored answers included.
  if (req.principal === null && row.owner_now !== null) return { prior: { kind: "cart_not_found" }, laneKey };
  if (row.cart_id !== req.cartId) return { prior: { kind: "idempotency_key_reused" }, laneKey };
  if (row.revision_now !== null && BigInt(row.revision_now) !== BigInt(row.cart_revision ?? 0)) {
    return { prior: { kind: "idempotency_key_reused" }, laneKey };
  }
  return { prior: { kind: "placed", order: row.response_body as PlacedOrder, replayed: true }, laneKey };
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
