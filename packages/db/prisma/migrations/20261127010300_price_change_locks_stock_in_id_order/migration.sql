-- Issue 11 review: a price change of several products (an import, a sale on many products, a
-- multi-row raw-SQL UPDATE) deadlocked with checkout batches. The row trigger of 20261127010000
-- took each changed product's inventory row lock in the UPDATE's row order, while every checkout
-- batch takes its stock rows in product id order (docs/architecture.md "Checkout invariant"):
-- an import changing B then A against a batch holding A and wanting B is a cycle. Under a rush
-- a batch lost such a deadlock three times in a row and its buyers got 409 CONFLICT.
-- Same rule as before (a change of a price field waits for the checkouts holding the product's
-- stock row), now taken once per statement for every changed product, in product id order.
DROP TRIGGER products_price_change_waits_for_checkouts ON products;
DROP FUNCTION products_price_change_waits_for_checkouts();

CREATE FUNCTION products_price_change_waits_for_checkouts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM inventory
     WHERE product_id IN (
        SELECT n.id FROM changed_new n JOIN changed_old o ON o.id = n.id
         WHERE n.list_price_cents IS DISTINCT FROM o.list_price_cents
            OR n.sale_price_cents IS DISTINCT FROM o.sale_price_cents
            OR n.sale_starts_at IS DISTINCT FROM o.sale_starts_at
            OR n.sale_ends_at IS DISTINCT FROM o.sale_ends_at)
     ORDER BY product_id
     FOR NO KEY UPDATE;
    RETURN NULL;
END
$$;

CREATE TRIGGER products_price_change_waits_for_checkouts
    AFTER UPDATE ON products
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION products_price_change_waits_for_checkouts();
