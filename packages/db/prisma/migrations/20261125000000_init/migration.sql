-- flashsale initial schema (design.md §3). Money is integer cents.

CREATE TABLE products (
    id               BIGSERIAL PRIMARY KEY,
    sku              TEXT        NOT NULL,
    name             TEXT        NOT NULL,
    description      TEXT        NOT NULL DEFAULT '',
    currency         CHAR(3)     NOT NULL DEFAULT 'USD',
    list_price_cents INTEGER     NOT NULL,
    sale_price_cents INTEGER,
    sale_starts_at   TIMESTAMPTZ(3),
    sale_ends_at     TIMESTAMPTZ(3),
    version          BIGINT      NOT NULL DEFAULT 1,
    updated_at       TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
    CONSTRAINT products_sku_key UNIQUE (sku),
    CONSTRAINT products_currency_iso CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT products_list_price_nonneg CHECK (list_price_cents >= 0),
    CONSTRAINT products_sale_price_nonneg CHECK (sale_price_cents IS NULL OR sale_price_cents >= 0),
    -- A sale is all three columns or none, and its window is non-empty.
    CONSTRAINT products_sale_complete CHECK (
        (sale_price_cents IS NULL AND sale_starts_at IS NULL AND sale_ends_at IS NULL)
        OR (sale_price_cents IS NOT NULL AND sale_starts_at IS NOT NULL AND sale_ends_at IS NOT NULL
            AND sale_starts_at < sale_ends_at)
    )
);

-- Every UPDATE bumps version, whoever issues it (the app, psql, a bulk import),
-- so cache fences and checkout version checks never depend on app discipline.
CREATE FUNCTION products_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER products_bump_version
    BEFORE UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION products_bump_version();

-- The single definition of "the price right now" (design.md §3), shared by the
-- catalog fill and the checkout transaction so they can never disagree.
CREATE FUNCTION product_effective_price_cents(p products, at TIMESTAMPTZ) RETURNS INTEGER
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p.sale_price_cents IS NOT NULL AND at >= p.sale_starts_at AND at < p.sale_ends_at
        THEN p.sale_price_cents
        ELSE p.list_price_cents
    END
$$;

-- The next instant at which the effective price changes without any write
-- (a sale starting or ending); NULL when no such instant is scheduled.
CREATE FUNCTION product_next_price_boundary(p products, at TIMESTAMPTZ) RETURNS TIMESTAMPTZ
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p.sale_price_cents IS NULL THEN NULL
        WHEN at < p.sale_starts_at THEN p.sale_starts_at
        WHEN at < p.sale_ends_at THEN p.sale_ends_at
        ELSE NULL
    END
$$;

CREATE TABLE inventory (
    product_id BIGINT  PRIMARY KEY REFERENCES products (id) ON DELETE CASCADE,
    available  INTEGER NOT NULL,
    CONSTRAINT inventory_available_nonneg CHECK (available >= 0)
);

CREATE TABLE carts (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    TEXT,
    created_at TIMESTAMPTZ(3) NOT NULL DEFAULT now()
);

CREATE TABLE cart_items (
    cart_id          UUID    NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    product_id       BIGINT  NOT NULL REFERENCES products (id),
    quantity         INTEGER NOT NULL,
    price_cents_seen INTEGER NOT NULL,
    version_seen     BIGINT  NOT NULL,
    added_at         TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
    PRIMARY KEY (cart_id, product_id),
    CONSTRAINT cart_items_quantity_range CHECK (quantity > 0 AND quantity <= 1000)
);

CREATE TABLE orders (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    cart_id     UUID   NOT NULL,
    user_id     TEXT,
    total_cents BIGINT NOT NULL,
    created_at  TIMESTAMPTZ(3) NOT NULL DEFAULT now()
);

CREATE TABLE order_items (
    order_id         UUID    NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id       BIGINT  NOT NULL REFERENCES products (id),
    quantity         INTEGER NOT NULL,
    unit_price_cents INTEGER NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
CREATE INDEX order_items_product_id_idx ON order_items (product_id);

-- One row per successful checkout; a replayed Idempotency-Key returns response_body.
CREATE TABLE idempotency_keys (
    key           TEXT  PRIMARY KEY,
    cart_id       UUID  NOT NULL,
    order_id      UUID  NOT NULL,
    response_body JSONB NOT NULL,
    created_at    TIMESTAMPTZ(3) NOT NULL DEFAULT now()
);

-- Debezium (pgoutput) streams exactly these tables; the connector does not
-- auto-create the publication (publication.autocreate.mode=disabled).
CREATE PUBLICATION flashsale_pub FOR TABLE products, inventory;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'debezium') THEN
        GRANT SELECT ON products, inventory TO debezium;
    END IF;
END
$$;
