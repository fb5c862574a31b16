-- The services' role (flashsale_app, infra/postgres/init.sql) gets row rights on every table by
-- default privileges. Two tables are not its to change: the price history is the order audit's
-- evidence (the trigger appends to it as the writer, so INSERT stays; nothing may rewrite it), and
-- the migrations ledger belongs to the migrator (the owner role). On a database without that role
-- (a bare `prisma migrate deploy` elsewhere) there is nothing to revoke.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'flashsale_app') THEN
        REVOKE UPDATE, DELETE, TRUNCATE ON product_price_history FROM flashsale_app;
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON _prisma_migrations FROM flashsale_app;
    END IF;
END
$$;
