-- Issue 11, third step (measured with bench/checkout-rush.ts: Postgres' CPU per checkout was the
-- bound, about 15 statements per buyer in a loop). checkout_place_orders now works on the whole
-- batch with set-based statements: claim every key, lock every cart (cart id order), lock and
-- read every stock row (product id order), read every price once, decide each buyer in arrival
-- order in memory, then write all orders, lines, keys and stock rows at once. Same contract,
-- locks and lock order (carts, then stock rows) for every batch, so batches never deadlock
-- each other; the commit-time trigger and the price-change lock of 20261127010000 stay.
CREATE OR REPLACE FUNCTION checkout_place_orders(p_reqs JSONB, p_max_lines INTEGER, p_max_units INTEGER) RETURNS JSONB
LANGUAGE plpgsql AS $$
DECLARE
    n INTEGER := jsonb_array_length(p_reqs);
    r_scope TEXT[];
    r_key TEXT[];
    r_cart UUID[];
    r_principal TEXT[];
    r_order UUID[];
    claimed UUID[];
    owned UUID[];
    owner TEXT[];
    pos INTEGER;
    body_i INTEGER[];
    body_v JSONB[];
    -- cart lines, sorted by (cart, product)
    l_cart UUID[];
    l_pid BIGINT[];
    l_qty INTEGER[];
    l_seen INTEGER[];
    v_avail JSONB;
    v_start JSONB;
    v_now JSONB;   -- product id -> effective price at v_at
    v_soon JSONB;  -- product id -> effective price 50 ms later (a boundary that close counts as crossed)
    v_at TIMESTAMPTZ;
    v_created TIMESTAMPTZ(3);
    outcome JSONB[];
    consumed UUID[] := '{}';
    placed_idx INTEGER[] := '{}';
    refused_idx INTEGER[] := '{}';
    i INTEGER;
    j INTEGER;
    first_line INTEGER;
    last_line INTEGER;
    lines_n INTEGER;
    units BIGINT;
    changed JSONB;
    short JSONB;
    took JSONB;
BEGIN
    SELECT array_agg(e->>'scope' ORDER BY o), array_agg(e->>'key' ORDER BY o), array_agg((e->>'cartId')::uuid ORDER BY o),
           array_agg(e->>'principal' ORDER BY o), array_agg((e->>'orderId')::uuid ORDER BY o)
      INTO r_scope, r_key, r_cart, r_principal, r_order
      FROM jsonb_array_elements(p_reqs) WITH ORDINALITY AS x(e, o);
    IF n = 0 THEN RETURN '[]'::jsonb; END IF;

    -- 1. Claim every key (a concurrent duplicate waits here for the other transaction; a duplicate
    --    inside the batch or after that wait is claim_lost and the caller replays the stored order).
    WITH ins AS (
        INSERT INTO idempotency_keys (scope, key, cart_id, order_id, response_body)
        SELECT r_scope[k], r_key[k], r_cart[k], r_order[k], '{}'::jsonb FROM generate_series(1, n) k ORDER BY k
        ON CONFLICT (scope, key) DO NOTHING
        RETURNING order_id
    )
    SELECT coalesce(array_agg(order_id), '{}') INTO claimed FROM ins;

    -- 2. Lock the claimed requests' carts, in cart id order: a cart is checked out by one
    --    transaction at a time, its lines read only under the lock (ownership is checked below).
    SELECT coalesce(array_agg(c.id), '{}'), coalesce(array_agg(c.user_id), '{}') INTO owned, owner FROM (
        SELECT c.id, c.user_id FROM carts c
         WHERE c.id IN (SELECT r_cart[k] FROM generate_series(1, n) k WHERE r_order[k] = ANY (claimed))
         ORDER BY c.id
         FOR NO KEY UPDATE
    ) c;

    SELECT array_agg(ci.cart_id ORDER BY ci.cart_id, ci.product_id), array_agg(ci.product_id ORDER BY ci.cart_id, ci.product_id),
           array_agg(ci.quantity ORDER BY ci.cart_id, ci.product_id), array_agg(ci.price_cents_seen ORDER BY ci.cart_id, ci.product_id)
      INTO l_cart, l_pid, l_qty, l_seen
      FROM cart_items ci WHERE ci.cart_id = ANY (owned);
    l_cart := coalesce(l_cart, '{}');

    -- 3. Lock and read every stock row the batch needs, in product id order; then read the prices
    --    (after the lock: a price change commits before this read, or after our commit).
    SELECT coalesce(jsonb_object_agg(x.product_id::text, x.available), '{}'::jsonb) INTO v_avail
      FROM (SELECT i.product_id, i.available FROM inventory i
             WHERE i.product_id IN (SELECT DISTINCT unnest(l_pid))
             ORDER BY i.product_id
             FOR NO KEY UPDATE) x;
    v_start := v_avail;
    v_at := clock_timestamp();
    SELECT coalesce(jsonb_object_agg(p.id::text, product_effective_price_cents(p, v_at)), '{}'::jsonb),
           coalesce(jsonb_object_agg(p.id::text, product_effective_price_cents(p, v_at + interval '50 milliseconds')), '{}'::jsonb)
      INTO v_now, v_soon
      FROM products p WHERE p.id IN (SELECT DISTINCT unnest(l_pid));

    -- 4. Decide each request in arrival order, in memory.
    outcome := array_fill(NULL::jsonb, ARRAY[n]);
    FOR i IN 1 .. n LOOP
        IF NOT r_order[i] = ANY (claimed) THEN
            outcome[i] := jsonb_build_object('kind', 'claim_lost');
            CONTINUE;
        END IF;
        refused_idx := refused_idx || i; -- until placed
        pos := array_position(owned, r_cart[i]);
        IF pos IS NULL OR owner[pos] IS DISTINCT FROM r_principal[i] THEN
            outcome[i] := jsonb_build_object('kind', 'cart_not_found');
            CONTINUE;
        END IF;
        first_line := array_position(l_cart, r_cart[i]);
        IF first_line IS NULL OR r_cart[i] = ANY (consumed) THEN
            outcome[i] := jsonb_build_object('kind', 'cart_empty');
            CONTINUE;
        END IF;
        last_line := first_line;
        WHILE last_line < cardinality(l_cart) AND l_cart[last_line + 1] = r_cart[i] LOOP
            last_line := last_line + 1;
        END LOOP;
        lines_n := last_line - first_line + 1;
        units := 0;
        changed := '[]'::jsonb;
        short := '[]'::jsonb;
        FOR j IN first_line .. last_line LOOP
            units := units + l_qty[j];
            IF coalesce((v_now->>l_pid[j]::text)::int, -1) <> l_seen[j] OR coalesce((v_soon->>l_pid[j]::text)::int, -1) <> l_seen[j] THEN
                changed := changed || jsonb_build_object('productId', l_pid[j], 'seenPriceCents', l_seen[j],
                                                         'currentPriceCents', (v_soon->>l_pid[j]::text)::int);
            END IF;
            IF NOT v_avail ? l_pid[j]::text OR (v_avail->>l_pid[j]::text)::int < l_qty[j] THEN
                short := short || jsonb_build_object('productId', l_pid[j], 'requested', l_qty[j]);
            END IF;
        END LOOP;
        IF lines_n > p_max_lines OR units > p_max_units THEN
            outcome[i] := jsonb_build_object('kind', 'cart_too_large', 'lines', lines_n, 'units', units);
        ELSIF jsonb_array_length(changed) > 0 THEN
            outcome[i] := jsonb_build_object('kind', 'price_changed', 'items', changed);
        ELSIF jsonb_array_length(short) > 0 THEN
            outcome[i] := jsonb_build_object('kind', 'out_of_stock', 'items', short);
        ELSE
            took := '{}'::jsonb;
            FOR j IN first_line .. last_line LOOP
                took := took || jsonb_build_object(l_pid[j]::text, (v_avail->>l_pid[j]::text)::int - l_qty[j]);
            END LOOP;
            v_avail := v_avail || took;
            consumed := consumed || r_cart[i];
            refused_idx := refused_idx[1 : cardinality(refused_idx) - 1];
            placed_idx := placed_idx || i;
            -- the order itself is filled in below, once the writes are done
            outcome[i] := jsonb_build_object('kind', 'placed', 'stockAfter', took);
        END IF;
    END LOOP;

    -- 5. Writes, set-based. Refused requests: their claim is withdrawn (nothing else was written).
    IF cardinality(refused_idx) > 0 THEN
        DELETE FROM idempotency_keys k
         USING unnest(refused_idx) AS x(i)
         WHERE k.scope = r_scope[x.i] AND k.key = r_key[x.i] AND k.order_id = r_order[x.i];
    END IF;
    IF cardinality(placed_idx) = 0 THEN
        RETURN to_jsonb(outcome);
    END IF;

    -- One decrement per product: the total taken by the buyers that fit.
    UPDATE inventory i SET available = (v_avail->>i.product_id::text)::int
     WHERE i.product_id IN (SELECT a.key::bigint FROM jsonb_each(v_avail) a WHERE a.value <> v_start->a.key);

    DELETE FROM cart_items WHERE cart_id = ANY (consumed);

    v_created := v_at;
    WITH placed AS (
        SELECT x.i, r_order[x.i] AS order_id, r_cart[x.i] AS cart_id FROM unnest(placed_idx) AS x(i)
    ), lines AS (
        SELECT p.i, p.order_id, l.pid, l.qty, (v_now->>l.pid::text)::int AS price
          FROM placed p
          JOIN unnest(l_cart, l_pid, l_qty) AS l(cart_id, pid, qty) ON l.cart_id = p.cart_id
    ), totals AS (
        SELECT order_id, sum(qty::bigint * price) AS total,
               jsonb_agg(jsonb_build_object('productId', pid, 'quantity', qty, 'unitPriceCents', price) ORDER BY pid) AS items
          FROM lines GROUP BY order_id
    ), o AS (
        INSERT INTO orders (id, cart_id, user_id, total_cents, created_at)
        SELECT p.order_id, p.cart_id, c.user_id, t.total, v_created
          FROM placed p JOIN totals t ON t.order_id = p.order_id JOIN carts c ON c.id = p.cart_id
    ), oi AS (
        INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)
        SELECT order_id, pid, qty, price FROM lines
    ), bodies AS (
        SELECT p.i, jsonb_build_object(
                   'id', p.order_id, 'cartId', p.cart_id, 'items', t.items, 'totalCents', t.total,
                   'createdAt', to_char(v_created AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) AS body,
               c.revision
          FROM placed p JOIN totals t ON t.order_id = p.order_id JOIN carts c ON c.id = p.cart_id
    ), k AS (
        UPDATE idempotency_keys k SET response_body = b.body, cart_revision = b.revision
          FROM bodies b
         WHERE k.scope = r_scope[b.i] AND k.key = r_key[b.i]
    )
    SELECT array_agg(b.i), array_agg(b.body) INTO body_i, body_v FROM bodies b;
    FOR j IN 1 .. coalesce(cardinality(body_i), 0) LOOP
        outcome[body_i[j]] := outcome[body_i[j]] || jsonb_build_object('order', body_v[j]);
    END LOOP;
    RETURN to_jsonb(outcome);
END
$$;
