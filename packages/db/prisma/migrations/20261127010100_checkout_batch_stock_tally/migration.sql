-- Issue 11, second step (measured with bench/checkout-rush.ts): checkout_place_orders no longer
-- updates a hot stock row once per buyer. A batch reads its locked stock rows once, decides
-- every buyer against a running count, and writes each product's row once at the end (the
-- total of the buyers that fit). Same contract and locks as migration 20261127010000.

CREATE OR REPLACE FUNCTION checkout_place_orders(p_reqs JSONB, p_max_lines INTEGER, p_max_units INTEGER) RETURNS JSONB
LANGUAGE plpgsql AS $$
DECLARE
    req JSONB;
    answers JSONB := '[]'::jsonb;
    v_scope TEXT;
    v_key TEXT;
    v_cart UUID;
    v_principal TEXT;
    v_order UUID;
    v_user TEXT;
    v_pids BIGINT[];
    v_qtys INTEGER[];
    v_seen INTEGER[];
    v_prices INTEGER[];
    v_units BIGINT;
    v_changed JSONB;
    v_short JSONB;
    v_at TIMESTAMPTZ;
    v_created TIMESTAMPTZ(3);
    v_total BIGINT;
    v_revision BIGINT;
    v_stock JSONB;
    v_order_json JSONB;
    v_refusal JSONB;
    v_avail JSONB;
    v_start JSONB;
    v_new JSONB;
BEGIN
    -- The batch's stock rows, locked in product id order and read once: v_avail is the running
    -- count of this batch (a row updated 64 times in one transaction grows a 64-version chain
    -- that every later access walks; one UPDATE per product at the end writes the total).
    SELECT coalesce(jsonb_object_agg(x.product_id::text, x.available), '{}'::jsonb) INTO v_avail
      FROM (SELECT i.product_id, i.available FROM inventory i
             WHERE i.product_id IN (SELECT ci.product_id FROM cart_items ci
                                     WHERE ci.cart_id IN (SELECT (e->>'cartId')::uuid FROM jsonb_array_elements(p_reqs) e))
             ORDER BY i.product_id
             FOR NO KEY UPDATE) x;
    v_start := v_avail;

    FOR req IN SELECT value FROM jsonb_array_elements(p_reqs) LOOP
        v_scope := req->>'scope';
        v_key := req->>'key';
        v_cart := (req->>'cartId')::uuid;
        v_principal := req->>'principal';
        v_order := (req->>'orderId')::uuid;
        v_refusal := NULL;

        INSERT INTO idempotency_keys (scope, key, cart_id, order_id, response_body)
        VALUES (v_scope, v_key, v_cart, v_order, '{}'::jsonb)
        ON CONFLICT (scope, key) DO NOTHING;
        IF NOT FOUND THEN
            answers := answers || jsonb_build_array(jsonb_build_object('kind', 'claim_lost'));
            CONTINUE;
        END IF;

        SELECT c.user_id INTO v_user FROM carts c
         WHERE c.id = v_cart AND c.user_id IS NOT DISTINCT FROM v_principal
         FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            v_refusal := jsonb_build_object('kind', 'cart_not_found');
        ELSE
            SELECT array_agg(ci.product_id ORDER BY ci.product_id), array_agg(ci.quantity ORDER BY ci.product_id),
                   array_agg(ci.price_cents_seen ORDER BY ci.product_id), coalesce(sum(ci.quantity), 0)
              INTO v_pids, v_qtys, v_seen, v_units
              FROM cart_items ci WHERE ci.cart_id = v_cart;
            IF v_pids IS NULL THEN
                v_refusal := jsonb_build_object('kind', 'cart_empty');
            ELSIF cardinality(v_pids) > p_max_lines OR v_units > p_max_units THEN
                v_refusal := jsonb_build_object('kind', 'cart_too_large', 'lines', cardinality(v_pids), 'units', v_units);
            END IF;
        END IF;

        IF v_refusal IS NULL THEN
            -- Lines added after the batch's up-front lock (rare) are locked and read here.
            IF EXISTS (SELECT 1 FROM unnest(v_pids) AS l(pid) WHERE NOT v_avail ? l.pid::text) THEN
                SELECT coalesce(jsonb_object_agg(x.product_id::text, x.available), '{}'::jsonb) INTO v_new
                  FROM (SELECT i.product_id, i.available FROM inventory i
                         WHERE i.product_id = ANY (v_pids) AND NOT v_avail ? i.product_id::text
                         ORDER BY i.product_id
                         FOR NO KEY UPDATE) x;
                v_avail := v_avail || v_new;
                v_start := v_start || v_new;
            END IF;
            v_at := clock_timestamp();
            -- A sale boundary within the next 50 ms counts as crossed: the commit-time trigger
            -- would refuse the line anyway.
            SELECT array_agg(product_effective_price_cents(p, v_at + interval '50 milliseconds') ORDER BY l.ord),
                   jsonb_agg(jsonb_build_object('productId', l.pid, 'seenPriceCents', l.seen,
                                                'currentPriceCents', product_effective_price_cents(p, v_at + interval '50 milliseconds'))
                             ORDER BY l.ord)
                     FILTER (WHERE product_effective_price_cents(p, v_at) <> l.seen
                                OR product_effective_price_cents(p, v_at + interval '50 milliseconds') <> l.seen),
                   jsonb_agg(jsonb_build_object('productId', l.pid, 'requested', l.qty) ORDER BY l.ord)
                     FILTER (WHERE NOT v_avail ? l.pid::text OR (v_avail->>l.pid::text)::int < l.qty)
              INTO v_prices, v_changed, v_short
              FROM unnest(v_pids, v_qtys, v_seen) WITH ORDINALITY AS l(pid, qty, seen, ord)
              JOIN products p ON p.id = l.pid;
            IF v_changed IS NOT NULL THEN
                v_refusal := jsonb_build_object('kind', 'price_changed', 'items', v_changed);
            ELSIF v_short IS NOT NULL THEN
                v_refusal := jsonb_build_object('kind', 'out_of_stock', 'items', v_short);
            END IF;
        END IF;

        IF v_refusal IS NOT NULL THEN
            DELETE FROM idempotency_keys WHERE scope = v_scope AND key = v_key;
            answers := answers || jsonb_build_array(v_refusal);
            CONTINUE;
        END IF;

        -- Taken from the running count (the rows are locked; the batch writes them once, below).
        SELECT jsonb_object_agg(l.pid::text, (v_avail->>l.pid::text)::int - l.qty) INTO v_stock
          FROM unnest(v_pids, v_qtys) AS l(pid, qty);
        v_avail := v_avail || v_stock;

        DELETE FROM cart_items WHERE cart_id = v_cart;
        SELECT revision INTO v_revision FROM carts WHERE id = v_cart;

        v_created := v_at;
        SELECT sum(q::bigint * pr) INTO v_total FROM unnest(v_qtys, v_prices) AS x(q, pr);
        INSERT INTO orders (id, cart_id, user_id, total_cents, created_at) VALUES (v_order, v_cart, v_user, v_total, v_created);
        INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
        SELECT v_order, l.pid, l.qty, l.price FROM unnest(v_pids, v_qtys, v_prices) AS l(pid, qty, price);

        v_order_json := jsonb_build_object(
            'id', v_order,
            'cartId', v_cart,
            'items', (SELECT jsonb_agg(jsonb_build_object('productId', l.pid, 'quantity', l.qty, 'unitPriceCents', l.price) ORDER BY l.pid)
                        FROM unnest(v_pids, v_qtys, v_prices) AS l(pid, qty, price)),
            'totalCents', v_total,
            'createdAt', to_char(v_created AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
        UPDATE idempotency_keys SET response_body = v_order_json, cart_revision = v_revision
         WHERE scope = v_scope AND key = v_key;
        answers := answers || jsonb_build_array(jsonb_build_object('kind', 'placed', 'order', v_order_json, 'stockAfter', v_stock));
    END LOOP;

    -- One set-based decrement per batch: each product's total taken by the buyers that fit.
    UPDATE inventory i SET available = (v_avail->>i.product_id::text)::int
     WHERE i.product_id IN (SELECT a.key::bigint FROM jsonb_each(v_avail) a WHERE a.value <> v_start->a.key);
    RETURN answers;
END
$$;
