-- Price audit trail: one row per committed price state of a product, written by a
-- trigger in the same transaction as the change (raw SQL and imports included).
-- With track_commit_timestamp = on, pg_xact_commit_timestamp(xmin) of a history row
-- is the instant that price state became visible, so the consistency checker can
-- compute "the effective price at the commit of this order" for any order.

CREATE TABLE product_price_history (
    id               BIGSERIAL PRIMARY KEY,
    product_id       BIGINT  NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    version          BIGINT  NOT NULL,
    list_price_cents INTEGER NOT NULL,
    sale_price_cents INTEGER,
    sale_starts_at   TIMESTAMPTZ(3),
    sale_ends_at     TIMESTAMPTZ(3)
);
CREATE INDEX product_price_history_product_idx ON product_price_history (product_id, version);

CREATE FUNCTION products_record_price() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT'
       OR NEW.list_price_cents IS DISTINCT FROM OLD.list_price_cents
       OR NEW.sale_price_cents IS DISTINCT FROM OLD.sale_price_cents
       OR NEW.sale_starts_at IS DISTINCT FROM OLD.sale_starts_at
       OR NEW.sale_ends_at IS DISTINCT FROM OLD.sale_ends_at THEN
        INSERT INTO product_price_history (product_id, version, list_price_cents, sale_price_cents, sale_starts_at, sale_ends_at)
        VALUES (NEW.id, NEW.version, NEW.list_price_cents, NEW.sale_price_cents, NEW.sale_starts_at, NEW.sale_ends_at);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER products_record_price
    AFTER INSERT OR UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION products_record_price();

-- Existing products get their current state as the first history row.
INSERT INTO product_price_history (product_id, version, list_price_cents, sale_price_cents, sale_starts_at, sale_ends_at)
SELECT id, version, list_price_cents, sale_price_cents, sale_starts_at, sale_ends_at FROM products;
