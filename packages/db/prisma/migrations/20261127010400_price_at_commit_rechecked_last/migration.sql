-- Issue 11 review: the commit-time price check (20261127010000) fires once per order line, in the
-- order the lines were written, and checks each line at its own clock_timestamp() + 5 ms. A
-- transaction with many lines (group commit: 64 carts of 100 lines = 6,400) spends tens to hundreds
-- of milliseconds in those triggers, so the first lines were checked that long before the COMMIT:
-- a 64 x 100-line batch of checkout_place_orders committed list-price lines 5-45 ms into a sale.
-- Now every statement writing order lines records the (product, price) pairs it wrote and how many
-- checks it queued (transaction-local settings), and the last check of the transaction checks all
-- the pairs again at one instant, right before the commit. The per-line check stays as it was
-- (if the count were ever wrong, nothing is lost against before).

CREATE FUNCTION order_items_price_pending() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n INTEGER;
    pairs JSONB;
BEGIN
    SELECT count(*), coalesce(jsonb_agg(DISTINCT jsonb_build_array(w.product_id, w.unit_price_cents)), '[]'::jsonb)
      INTO n, pairs FROM written w;
    IF n > 0 THEN
        PERFORM set_config('flashsale.price_checks_pending',
            (coalesce(nullif(current_setting('flashsale.price_checks_pending', true), '')::int, 0) + n)::text, true);
        PERFORM set_config('flashsale.price_check_pairs',
            (coalesce(nullif(current_setting('flashsale.price_check_pairs', true), '')::jsonb, '[]'::jsonb) || pairs)::text, true);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER order_items_price_pending_insert
    AFTER INSERT ON order_items REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION order_items_price_pending();
CREATE TRIGGER order_items_price_pending_update
    AFTER UPDATE ON order_items REFERENCING NEW TABLE AS written
    FOR EACH STATEMENT EXECUTE FUNCTION order_items_price_pending();

CREATE OR REPLACE FUNCTION order_items_price_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    at_check TIMESTAMPTZ := clock_timestamp();
    now_cents INTEGER;
    soon_cents INTEGER;
    pending INTEGER;
    bad_product BIGINT;
    bad_price INTEGER;
BEGIN
    SELECT product_effective_price_cents(p, at_check), product_effective_price_cents(p, at_check + interval '5 milliseconds')
      INTO now_cents, soon_cents
      FROM products p WHERE p.id = NEW.product_id;
    IF now_cents IS DISTINCT FROM NEW.unit_price_cents OR soon_cents IS DISTINCT FROM NEW.unit_price_cents THEN
        RAISE EXCEPTION 'order % product %: unit price % is not the effective price % at commit',
            NEW.order_id, NEW.product_id, NEW.unit_price_cents, now_cents
            USING ERRCODE = 'FS409';
    END IF;

    -- The transaction's last queued check: every line written, again, at one instant.
    pending := coalesce(nullif(current_setting('flashsale.price_checks_pending', true), '')::int, 0) - 1;
    PERFORM set_config('flashsale.price_checks_pending', pending::text, true);
    IF pending <= 0 THEN
        at_check := clock_timestamp();
        SELECT x.pid, x.price INTO bad_product, bad_price
          FROM (SELECT DISTINCT (e->>0)::bigint AS pid, (e->>1)::int AS price
                  FROM jsonb_array_elements(coalesce(nullif(current_setting('flashsale.price_check_pairs', true), '')::jsonb, '[]'::jsonb)) e) x
          LEFT JOIN products p ON p.id = x.pid
         WHERE product_effective_price_cents(p, at_check) IS DISTINCT FROM x.price
            OR product_effective_price_cents(p, at_check + interval '5 milliseconds') IS DISTINCT FROM x.price
         LIMIT 1;
        PERFORM set_config('flashsale.price_check_pairs', '', true);
        IF bad_product IS NOT NULL THEN
            RAISE EXCEPTION 'product %: unit price % is not the effective price at commit', bad_product, bad_price
                USING ERRCODE = 'FS409';
        END IF;
    END IF;
    RETURN NULL;
END
$$;

-- Fired for every updated line (was: only when the price or product changed), so the queued checks
-- and the count above agree.
DROP TRIGGER order_items_price_at_commit ON order_items;
CREATE CONSTRAINT TRIGGER order_items_price_at_commit
    AFTER INSERT OR UPDATE ON order_items
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION order_items_price_at_commit();
