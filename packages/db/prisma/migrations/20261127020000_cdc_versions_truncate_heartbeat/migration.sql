-- Issue 12 items 2 and 3, issue 10 item 1 (docs/architecture.md "Invalidation", "Freshness").
--
-- 1. Versions never go backwards for an id. Every products version comes from ONE sequence, on
--    INSERT as well as UPDATE, so a row deleted (or truncated) and inserted again gets a version
--    above every version it ever had: INVALIDATE (which keeps a cached value whose version is >= the
--    event's) can never mistake the old row's cached value for the new one.
CREATE SEQUENCE product_version_seq AS BIGINT;
SELECT setval('product_version_seq',
              GREATEST(1, (SELECT COALESCE(max(version), 0) FROM products),
                          (SELECT COALESCE(max(version), 0) FROM product_price_history)));

CREATE OR REPLACE FUNCTION products_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := nextval('product_version_seq');
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
        IF NEW.change_traceparent IS NOT DISTINCT FROM OLD.change_traceparent THEN
            NEW.change_traceparent := NULL;
        END IF;
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER products_bump_version ON products;
CREATE TRIGGER products_bump_version
    BEFORE INSERT OR UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION products_bump_version();

-- 2. Writes that skip ordinary triggers (session_replication_role = replica: logical-replication
--    apply workers, pg_restore --disable-triggers, trigger-disabling bulk loads) still move the
--    version and still record the price history: ALWAYS triggers fire in every replication role.
ALTER TABLE products ENABLE ALWAYS TRIGGER products_bump_version;
ALTER TABLE products ENABLE ALWAYS TRIGGER products_record_price;

-- 3. Cache epochs: a row here retires the product keyspace. It travels WAL -> Debezium -> Kafka ->
--    invalidator like any change (routed into the products topic, infra/native/register-connector).
--    version_floor is above every version a row had before the epoch: the invalidator fences every
--    product key it finds at it, so a fill that read a pre-epoch row is refused and post-epoch rows
--    (versions above the floor) fill normally.
CREATE TABLE cache_epochs (
    id            BIGSERIAL PRIMARY KEY,
    reason        TEXT           NOT NULL,
    version_floor BIGINT         NOT NULL,
    created_at    TIMESTAMPTZ(3) NOT NULL DEFAULT now()
);

-- TRUNCATE fires no row triggers and Debezium's truncate event names no ids: a statement trigger
-- records the epoch in the truncating transaction. Its nextval runs after TRUNCATE holds its
-- ACCESS EXCLUSIVE lock, i.e. after every transaction that gave a truncated row its version ended.
CREATE FUNCTION products_truncate_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cache_epochs (reason, version_floor) VALUES ('TRUNCATE', nextval('product_version_seq'));
    RETURN NULL;
END
$$;
CREATE TRIGGER products_truncate_epoch
    BEFORE TRUNCATE ON products
    FOR EACH STATEMENT EXECUTE FUNCTION products_truncate_epoch();
ALTER TABLE products ENABLE ALWAYS TRIGGER products_truncate_epoch;

-- 4. Freshness heartbeats (docs/architecture.md "Freshness"): Debezium's heartbeat.action.query
--    bumps every row every heartbeat.interval.ms; the rows are routed into the products topic, each
--    keyed {"id": N} like a product, so row N lands on the partition product N lands on. The
--    invalidator keeps one row per partition of that topic (it inserts the ids it needs).
CREATE TABLE cdc_heartbeat (
    id        INTEGER PRIMARY KEY,
    partition INTEGER        NOT NULL,
    beat      BIGINT         NOT NULL DEFAULT 0,
    at        TIMESTAMPTZ(3) NOT NULL DEFAULT now()
);

ALTER PUBLICATION flashsale_pub ADD TABLE cache_epochs, cdc_heartbeat;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'debezium') THEN
        GRANT SELECT ON cache_epochs TO debezium;
        GRANT SELECT, UPDATE ON cdc_heartbeat TO debezium;
    END IF;
END
$$;
