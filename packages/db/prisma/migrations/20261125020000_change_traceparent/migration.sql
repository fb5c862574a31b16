-- The W3C traceparent of the request that made a change, carried by the change event
-- (Debezium streams the row) so the invalidator's span links to the write's trace.
-- A write that does not set it (raw SQL, a traceless client) must not inherit the
-- previous writer's value, so the version trigger clears an unchanged one.

ALTER TABLE products ADD COLUMN change_traceparent TEXT;

CREATE OR REPLACE FUNCTION products_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    IF NEW.change_traceparent IS NOT DISTINCT FROM OLD.change_traceparent THEN
        NEW.change_traceparent := NULL;
    END IF;
    RETURN NEW;
END
$$;
