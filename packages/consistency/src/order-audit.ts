import type pg from "pg";

/**
 * Audits orders against the price history (migration 20261125010000): for each order
 * line, the price state committed last before the order's own commit (both from
 * pg_xact_commit_timestamp; needs track_commit_timestamp = on) gives the effective
 * price at that commit, which must equal the unit price charged. Also checks stock:
 * no inventory row below zero.
 */
export interface WrongPriceOrder {
  orderId: string;
  productId: number;
  chargedCents: number;
  effectiveCentsAtCommit: number;
  committedAt: string;
}

export interface OrderAuditReport {
  orderLinesChecked: number;
  /** Lines without a commit timestamp (committed before track_commit_timestamp was on) or without price history before them. */
  unauditable: number;
  wrongPrice: WrongPriceOrder[];
  negativeStockProducts: number;
}

export async function auditOrders(pool: pg.Pool, opts: { since: Date; productIds?: number[] }): Promise<OrderAuditReport> {
  const { rows } = await pool.query<{
    order_id: string;
    product_id: string;
    charged: number;
    committed_at: Date | null;
    expected: number | null;
  }>(
    `SELECT oi.order_id::text, oi.product_id, oi.unit_price_cents AS charged, c.committed_at,
            CASE WHEN h.sale_price_cents IS NOT NULL AND c.committed_at >= h.sale_starts_at AND c.committed_at < h.sale_ends_at
                 THEN h.sale_price_cents ELSE h.list_price_cents END AS expected
     FROM order_items oi
     JOIN orders o ON o.id = oi.order_id
     CROSS JOIN LATERAL (SELECT pg_xact_commit_timestamp(o.xmin) AS committed_at) c
     LEFT JOIN LATERAL (
       SELECT * FROM product_price_history h
       WHERE h.product_id = oi.product_id AND pg_xact_commit_timestamp(h.xmin) <= c.committed_at
       ORDER BY h.version DESC LIMIT 1
     ) h ON true
     WHERE o.created_at >= $1 AND ($2::bigint[] IS NULL OR oi.product_id = ANY($2::bigint[]))`,
    [opts.since, opts.productIds ?? null],
  );
  const { rows: stock } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM inventory WHERE available < 0");
  const auditable = rows.filter(
    (r): r is typeof r & { committed_at: Date; expected: number } => r.committed_at !== null && r.expected !== null,
  );
  return {
    orderLinesChecked: auditable.length,
    unauditable: rows.length - auditable.length,
    wrongPrice: auditable
      .filter((r) => r.expected !== r.charged)
      .map((r) => ({
        orderId: r.order_id,
        productId: Number(r.product_id),
        chargedCents: r.charged,
        effectiveCentsAtCommit: r.expected,
        committedAt: r.committed_at.toISOString(),
      })),
    negativeStockProducts: stock[0]?.n ?? 0,
  };
}
