-- Issue 17: carts owned by a principal, idempotency keys scoped per principal and tied
-- to the cart state they ordered, and products deletable while they sit in carts.
-- README "Ownership", "Idempotency keys" and "Deleting a product" describe the rules.

-- 1. Cart revision: bumped by every change to a cart's lines, whoever makes it (the app,
--    psql, a product deletion cascading). A replayed Idempotency-Key is honoured only
--    while the cart is at the revision the order left it at (packages/db checkout.ts).
ALTER TABLE carts ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION cart_items_bump_cart_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE carts SET revision = revision + 1 WHERE id = OLD.cart_id;
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.cart_id <> OLD.cart_id) THEN
        UPDATE carts SET revision = revision + 1 WHERE id = NEW.cart_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER cart_items_bump_cart_revision
    AFTER INSERT OR UPDATE OR DELETE ON cart_items
    FOR EACH ROW EXECUTE FUNCTION cart_items_bump_cart_revision();

-- 2. Deleting a product removes it from every cart (it could never be checked out again)
--    and leaves a note the cart view shows as an unavailable line. This holds for any
--    DELETE, raw SQL included, because it is the foreign key's rule plus a trigger.
--    Orders keep their lines: a product that was ever ordered still cannot be deleted
--    (order_items keeps its restricting foreign key; retire such a product instead).
CREATE TABLE cart_unavailable_items (
    cart_id          UUID    NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    product_id       BIGINT  NOT NULL, -- no foreign key: the product is gone
    quantity         INTEGER NOT NULL,
    price_cents_seen INTEGER NOT NULL,
    reason           TEXT    NOT NULL DEFAULT 'PRODUCT_DELETED',
    removed_at       TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
    PRIMARY KEY (cart_id, product_id)
);

CREATE FUNCTION cart_items_note_deleted_product() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Fired for every removed line; only a line whose product no longer exists (the
    -- cascade of a product DELETE) is noted, not a checkout consuming it.
    IF NOT EXISTS (SELECT 1 FROM products WHERE id = OLD.product_id)
       AND EXISTS (SELECT 1 FROM carts WHERE id = OLD.cart_id) THEN
        INSERT INTO cart_unavailable_items (cart_id, product_id, quantity, price_cents_seen)
        VALUES (OLD.cart_id, OLD.product_id, OLD.quantity, OLD.price_cents_seen)
        ON CONFLICT (cart_id, product_id) DO UPDATE
            SET quantity = EXCLUDED.quantity, price_cents_seen = EXCLUDED.price_cents_seen, removed_at = now();
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER cart_items_note_deleted_product
    AFTER DELETE ON cart_items
    FOR EACH ROW EXECUTE FUNCTION cart_items_note_deleted_product();

ALTER TABLE cart_items DROP CONSTRAINT cart_items_product_id_fkey;
ALTER TABLE cart_items ADD CONSTRAINT cart_items_product_id_fkey
    FOREIGN KEY (product_id) REFERENCES products (id) ON DELETE CASCADE;
-- The cascade looks lines up by product.
CREATE INDEX cart_items_product_id_idx ON cart_items (product_id);

-- 3. Idempotency keys are scoped per principal: 'user:<X-User-Id>' for a signed-in
--    shopper, 'cart:<cart id>' for an anonymous cart (its id is the capability). The
--    same key from two principals never meets; cart_revision is the cart's revision
--    right after the order consumed its lines.
ALTER TABLE idempotency_keys ADD COLUMN scope TEXT;
ALTER TABLE idempotency_keys ADD COLUMN cart_revision BIGINT NOT NULL DEFAULT 0;
UPDATE idempotency_keys k SET scope = CASE WHEN o.user_id IS NULL THEN 'cart:' || k.cart_id ELSE 'user:' || o.user_id END
    FROM orders o WHERE o.id = k.order_id;
UPDATE idempotency_keys SET scope = 'cart:' || cart_id WHERE scope IS NULL;
ALTER TABLE idempotency_keys ALTER COLUMN scope SET NOT NULL;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (scope, key);

