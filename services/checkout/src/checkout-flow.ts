import { randomUUID } from "node:crypto";
import type { StockGate } from "@flashsale/cache";
import {
  availableStock,
  type CheckoutOutcome,
  type CheckoutRequest,
  cartLines,
  claimCart,
  type Db,
  type OrderPlacer,
  precheckCheckout,
} from "@flashsale/db";
import type { Logger } from "@flashsale/telemetry";
import type { BulkheadPolicy } from "cockatiel";

export interface CheckoutFlowDeps {
  db: Db;
  /** null: no gate (benchmark baseline, or switched off by config). */
  gate: StockGate | null;
  /** Places orders: group commit (packages/db groupCommit) or one checkout per statement. */
  orders: OrderPlacer;
  /** Bounds checkouts in flight (waiting for or inside a batch); beyond its queue -> 503. */
  transactions: BulkheadPolicy;
  logger: Logger;
}

interface Reservation {
  productId: number;
  quantity: number;
}

/**
 * One checkout: replay check (a finished key in the principal's scope answers from the
 * store), then `admit` (the rate limit: only attempts that reach the business logic are
 * counted, never replays), the claim of an anonymous cart, the stock gate (Redis), and the
 * one Postgres statement that decides (packages/db placeOrders, combined with the checkouts
 * arriving at the same time by group commit). The gate is an
 * admission filter only: if Redis misbehaves the checkout proceeds without it ("fail
 * open"), because Postgres alone already guarantees no oversell.
 */
export async function checkout(
  deps: CheckoutFlowDeps,
  req: CheckoutRequest,
  admit: () => Promise<void> = async () => {},
): Promise<CheckoutOutcome> {
  const { prior, laneKey } = await precheckCheckout(deps.db, req);
  if (prior) return prior;
  await admit();
  await claimCart(deps.db, req.cartId, req.principal);
  const { cartId } = req;

  const token = randomUUID();
  const reserved: Reservation[] = [];
  if (deps.gate) {
    try {
      for (const line of await cartLines(deps.db, cartId, req.principal)) {
        const r = await deps.gate.reserve(line.productId, line.quantity, token, () => availableStock(deps.db, line.productId));
        if (r === "sold_out") {
          await releaseAll(deps, reserved, token);
          return { kind: "out_of_stock", items: [{ productId: line.productId, requested: line.quantity }] };
        }
        reserved.push(line);
      }
    } catch (err) {
      deps.logger.warn({ err: (err as Error).message }, "stock gate unavailable; checking out without it");
      await releaseAll(deps, reserved, token);
      reserved.length = 0;
    }
  }

  let outcome: CheckoutOutcome | undefined;
  try {
    outcome = await deps.transactions.execute(() => deps.orders.place(req, laneKey));
    return outcome;
  } finally {
    const stockAfter = outcome?.kind === "placed" ? outcome.stockAfter : undefined;
    await releaseAll(deps, reserved, token, stockAfter);
  }
}

/** Ends the reservations; after a commit, tells the gate how many units Postgres has left. */
async function releaseAll(deps: CheckoutFlowDeps, reserved: Reservation[], token: string, stockAfter?: Map<number, number>): Promise<void> {
  for (const r of reserved) {
    // A failed release only leaves a hold until it expires (more pessimistic, never oversell).
    await deps.gate?.release(r.productId, r.quantity, token, stockAfter?.get(r.productId)).catch(() => {});
  }
}
