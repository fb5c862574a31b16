-- Issue 11: checkout in one round trip, its price checked at commit inside Postgres.
-- docs/architecture.md "Checkout invariant" describes the protocol; in short:
--   * checkout_place_orders() places a batch of checkouts (one or many, combined by the
--     checkout process) in one statement: no row lock is held across a network round trip;
--   * a deferred constraint trigger on order_items re-checks every line against the effective
--     price at clock_timestamp() when the transaction commits, whoever wrote the line;
--   * a change of a price field waits for the product's inventory row lock, which every
--     checkout holds from its stock decrement to its commit: a price change commits either
--     before a checkout's price checks (which then see it) or after that checkout's commit.
--     Checkouts no longer take FOR SHARE on products, so they cannot starve a price change.

-- 1. The commit-time price check. Raised as SQLSTATE FS409: the checkout retries the batch,
--    which then answers PRICE_CHANGED (a sale boundary crossed between the check and the commit).
--    The 5 ms margin covers the instant between this trigger and the commit record itself.
CREATE FUNCTION order_items_price_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    at_check TIMESTAMPTZ := clock_timestamp();
    now_cents INTEGER;
    soon_cents INTEGER;
BEGIN
    SELECT product_effective_price_cents(p, at_check), product_effective_price_cents(p, at_check + interval '5 milliseconds')
      INTO now_cents, soon_cents
      FROM products p WHERE p.id = NEW.product_id;
    IF now_cents IS DISTINCT FROM NEW.unit_price_cents OR soon_cents IS DISTINCT FROM NEW.unit_price_cents THEN
        RAISE EXCEPTION 'order % product %: unit price % is not the effective price % at commit',
            NEW.order_id, NEW.product_id, NEW.unit_price_cents, now_cents
            USING ERRCODE = 'FS409';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER order_items_price_at_commit
    AFTER INSERT OR UPDATE OF unit_price_cents, product_id ON order_items
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION order_items_price_at_commit();

-- 2. A price change waits for the checkouts holding the product's stock row (see above).
CREATE FUNCTION products_price_change_waits_for_checkouts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM inventory WHERE product_id = NEW.id FOR NO KEY UPDATE;
    RETURN NULL;
END
$$;

CREATE TRIGGER products_price_change_waits_for_checkouts
    AFTER UPDATE ON products
    FOR EACH ROW
    WHEN (NEW.list_price_cents IS DISTINCT FROM OLD.list_price_cents
          OR NEW.sale_price_cents IS DISTINCT FROM OLD.sale_price_cents
          OR NEW.sale_starts_at IS DISTINCT FROM OLD.sale_starts_at
          OR NEW.sale_ends_at IS DISTINCT FROM OLD.sale_ends_at)
    EXECUTE FUNCTION products_price_change_waits_for_checkouts();

-- 3. The checkout itself. p_reqs: [{scope, key, cartId, principal, orderId}, ...] in arrival
--    order; the answer: one outcome per request, same order. Per request, nothing is written
--    unless it is placed: the key is claimed first (a concurrent duplicate waits here for the
--    other transaction, then gets claim_lost and the caller replays the stored order), and
--    deleted again if the checkout is refused. Every decision is taken under the locks:
--    the inventory rows (all the batch's, locked up front in product id order, so batches
--    never deadlock each other) and the cart row (one cart, at most one order: the second
--    checkout of a cart finds its lines consumed, CART_EMPTY).
CREATE FUNCTION checkout_place_orders(p_reqs JSONB, p_max_lines INTEGER, p_max_units INTEGER) RETURNS JSONB
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
BEGIN
    PERFORM 1 FROM inventory
     WHERE product_id IN (SELECT ci.product_id FROM cart_items ci
                           WHERE ci.cart_id IN (SELECT (e->>'cartId')::uuid FROM jsonb_array_elements(p_reqs) e))
     ORDER BY product_id
     FOR NO KEY UPDATE;

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
            -- Lines added after the batch's up-front lock (rare) are locked here.
            PERFORM 1 FROM inventory WHERE product_id = ANY (v_pids) ORDER BY product_id FOR NO KEY UPDATE;
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
                     FILTER (WHERE i.available IS NULL OR i.available < l.qty)
              INTO v_prices, v_changed, v_short
              FROM unnest(v_pids, v_qtys, v_seen) WITH ORDINALITY AS l(pid, qty, seen, ord)
              JOIN products p ON p.id = l.pid
              LEFT JOIN inventory i ON i.product_id = l.pid;
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

        -- One set-based decrement; the rows are locked and were checked just above.
        WITH took AS (
            UPDATE inventory i SET available = i.available - l.qty
              FROM unnest(v_pids, v_qtys) AS l(pid, qty)
             WHERE i.product_id = l.pid
            RETURNING i.product_id, i.available
        )
        SELECT jsonb_object_agg(product_id::text, available) INTO v_stock FROM took;

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
    RETURN answers;
END
$$;
