-- flashsale bootstrap: roles, databases and what each role may do (tables and the publication
-- belong to the app's migrations). Idempotent; run as a superuser connected to database "postgres":
--   native: infra/native/up runs it on every `up postgres` (so re-running it converges an older cluster)
--   docker: mounted into /docker-entrypoint-initdb.d/ (runs once, on an empty volume)
--
-- Roles, least privilege (packages/db/test/roles.test.ts proves the refusals):
--   flashsale      the owner: owns the databases and every object the migrations create; runs the
--                  migrations and the seed, and is the tests' admin role. Not a superuser: what the
--                  tests need beyond ownership is granted below, by name.
--   flashsale_app  the services' role (DATABASE_URL): reads and writes rows; owns nothing, cannot
--                  change the schema, cannot switch triggers off (session_replication_role).
--   debezium       logical replication (REPLICATION) + SELECT on the captured tables, granted by the
--                  migration that creates the publication; nothing else.
SET client_min_messages = warning; -- re-runs are quiet ("already exists, skipping")

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'flashsale') THEN
    CREATE ROLE flashsale LOGIN PASSWORD 'flashsale';
  END IF;
  -- Also demotes the SUPERUSER of clusters bootstrapped before the roles were split.
  -- CREATEDB: tests may create scratch databases.
  ALTER ROLE flashsale LOGIN NOSUPERUSER NOCREATEROLE NOREPLICATION NOBYPASSRLS CREATEDB PASSWORD 'flashsale';

  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'flashsale_app') THEN
    CREATE ROLE flashsale_app LOGIN PASSWORD 'flashsale_app';
  END IF;
  ALTER ROLE flashsale_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD 'flashsale_app';

  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'debezium') THEN
    CREATE ROLE debezium LOGIN REPLICATION PASSWORD 'debezium';
  END IF;
  ALTER ROLE debezium LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD 'debezium';
END
$$;

-- The owner/test role, explicitly: read every role's statement statistics (tests count the
-- services' Postgres reads in pg_stat_statements) and load fixtures with triggers off.
GRANT pg_read_all_stats TO flashsale;
GRANT SET ON PARAMETER session_replication_role TO flashsale;

SELECT 'CREATE DATABASE flashsale OWNER flashsale'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'flashsale') \gexec
-- The test stack's own databases (test/stack.env): tests never touch flashsale.
SELECT 'CREATE DATABASE flashsale_test OWNER flashsale'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'flashsale_test') \gexec
SELECT 'CREATE DATABASE flashsale_scratch OWNER flashsale'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'flashsale_scratch') \gexec

-- Per database the services use: the app role's row rights on what exists now and on what the
-- owner's migrations create later (default privileges), and pg_stat_statements (its CREATE
-- EXTENSION needs a superuser; the tests' `CREATE EXTENSION IF NOT EXISTS` then only finds it).
\connect flashsale
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
GRANT EXECUTE ON FUNCTION pg_stat_statements_reset(oid, oid, bigint) TO flashsale;
GRANT CONNECT ON DATABASE flashsale TO flashsale_app;
GRANT USAGE ON SCHEMA public TO flashsale_app, debezium; -- debezium: SELECT on its tables comes with the migration
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO flashsale_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO flashsale_app;
-- ...except what migration 20261126200000_app_role_append_only_audit takes back (this file runs
-- on every `up`, after the migrations on an existing cluster): the price history is append-only
-- for the app, the migrations ledger is the owner's.
DO $$
BEGIN
  IF to_regclass('public.product_price_history') IS NOT NULL THEN
    REVOKE UPDATE, DELETE, TRUNCATE ON product_price_history FROM flashsale_app;
  END IF;
  IF to_regclass('public._prisma_migrations') IS NOT NULL THEN
    REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON _prisma_migrations FROM flashsale_app;
  END IF;
END
$$;
ALTER DEFAULT PRIVILEGES FOR ROLE flashsale IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO flashsale_app;
ALTER DEFAULT PRIVILEGES FOR ROLE flashsale IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO flashsale_app;

-- Rewriting DDL on products (docs/architecture.md "Invalidation"): a table rewrite (ALTER COLUMN
-- TYPE ... USING, ADD COLUMN with a volatile default, ...) changes rows without row events and
-- without moving their version, so nothing would evict them. Enforced here, because event
-- triggers need a superuser (migrations run as the owner): in the rewriting transaction itself
-- every row gets a new version (the ALWAYS version trigger: one row event each, evicted and fenced
-- like any update) and its price state is appended to the price history. Any DDL that leaves one
-- of the cache's products triggers missing or not ALWAYS-enabled is refused. Both are ALWAYS
-- enabled so that session_replication_role = replica does not skip them. In force once migration
-- 20261127020000 (which sets the triggers up) has committed; a no-op on other tables.
-- begin products DDL guard
CREATE OR REPLACE FUNCTION flashsale_products_rewrite_seen() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF pg_event_trigger_table_rewrite_oid() = to_regclass('public.products') THEN
    PERFORM set_config('flashsale.products_rewritten', 'on', true);
  END IF;
END
$fn$;
CREATE OR REPLACE FUNCTION flashsale_products_ddl_guard() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
DECLARE
  products oid := to_regclass('public.products');
BEGIN
  -- In force once the migration that sets the rules up has committed (init.sql runs before the
  -- migrations on a fresh cluster; the migrations before it and itself must pass).
  IF products IS NULL OR to_regclass('public._prisma_migrations') IS NULL THEN RETURN; END IF;
  IF NOT EXISTS (SELECT 1 FROM public._prisma_migrations
                  WHERE migration_name = '20261127020000_cdc_versions_truncate_heartbeat'
                    AND finished_at IS NOT NULL AND rolled_back_at IS NULL) THEN
    RETURN;
  END IF;
  IF (SELECT count(*) FROM pg_trigger
       WHERE tgrelid = products AND tgenabled = 'A'
         AND tgname IN ('products_bump_version', 'products_record_price', 'products_truncate_epoch')) <> 3 THEN
    RAISE EXCEPTION 'products triggers products_bump_version, products_record_price and products_truncate_epoch must exist and be ENABLE ALWAYS (docs/architecture.md "Invalidation")';
  END IF;
  IF current_setting('flashsale.products_rewritten', true) = 'on' THEN
    PERFORM set_config('flashsale.products_rewritten', 'off', true);
    UPDATE public.products SET version = version;
    INSERT INTO public.product_price_history (product_id, version, list_price_cents, sale_price_cents, sale_starts_at, sale_ends_at)
      SELECT id, version, list_price_cents, sale_price_cents, sale_starts_at, sale_ends_at FROM public.products;
  END IF;
END
$fn$;
DO $do$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_event_trigger WHERE evtname = 'flashsale_products_rewrite_seen') THEN
    CREATE EVENT TRIGGER flashsale_products_rewrite_seen ON table_rewrite EXECUTE FUNCTION flashsale_products_rewrite_seen();
  END IF;
  IF NOT EXISTS (SELECT FROM pg_event_trigger WHERE evtname = 'flashsale_products_ddl_guard') THEN
    CREATE EVENT TRIGGER flashsale_products_ddl_guard ON ddl_command_end EXECUTE FUNCTION flashsale_products_ddl_guard();
  END IF;
  ALTER EVENT TRIGGER flashsale_products_rewrite_seen ENABLE ALWAYS;
  ALTER EVENT TRIGGER flashsale_products_ddl_guard ENABLE ALWAYS;
END
$do$;
-- end products DDL guard

\connect flashsale_test
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
GRANT EXECUTE ON FUNCTION pg_stat_statements_reset(oid, oid, bigint) TO flashsale;
GRANT CONNECT ON DATABASE flashsale_test TO flashsale_app;
GRANT USAGE ON SCHEMA public TO flashsale_app, debezium; -- debezium: SELECT on its tables comes with the migration
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO flashsale_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO flashsale_app;
-- ...except what migration 20261126200000_app_role_append_only_audit takes back (this file runs
-- on every `up`, after the migrations on an existing cluster): the price history is append-only
-- for the app, the migrations ledger is the owner's.
DO $$
BEGIN
  IF to_regclass('public.product_price_history') IS NOT NULL THEN
    REVOKE UPDATE, DELETE, TRUNCATE ON product_price_history FROM flashsale_app;
  END IF;
  IF to_regclass('public._prisma_migrations') IS NOT NULL THEN
    REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON _prisma_migrations FROM flashsale_app;
  END IF;
END
$$;
ALTER DEFAULT PRIVILEGES FOR ROLE flashsale IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO flashsale_app;
ALTER DEFAULT PRIVILEGES FOR ROLE flashsale IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO flashsale_app;

-- Rewriting DDL on products (docs/architecture.md "Invalidation"): a table rewrite (ALTER COLUMN
-- TYPE ... USING, ADD COLUMN with a volatile default, ...) changes rows without row events and
-- without moving their version, so nothing would evict them. Enforced here, because event
-- triggers need a superuser (migrations run as the owner): in the rewriting transaction itself
-- every row gets a new version (the ALWAYS version trigger: one row event each, evicted and fenced
-- like any update) and its price state is appended to the price history. Any DDL that leaves one
-- of the cache's products triggers missing or not ALWAYS-enabled is refused. Both are ALWAYS
-- enabled so that session_replication_role = replica does not skip them. In force once migration
-- 20261127020000 (which sets the triggers up) has committed; a no-op on other tables.
CREATE OR REPLACE FUNCTION flashsale_products_rewrite_seen() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF pg_event_trigger_table_rewrite_oid() = to_regclass('public.products') THEN
    PERFORM set_config('flashsale.products_rewritten', 'on', true);
  END IF;
END
$fn$;
CREATE OR REPLACE FUNCTION flashsale_products_ddl_guard() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
DECLARE
  products oid := to_regclass('public.products');
BEGIN
  -- In force once the migration that sets the rules up has committed (init.sql runs before the
  -- migrations on a fresh cluster; the migrations before it and itself must pass).
  IF products IS NULL OR to_regclass('public._prisma_migrations') IS NULL THEN RETURN; END IF;
  IF NOT EXISTS (SELECT 1 FROM public._prisma_migrations
                  WHERE migration_name = '20261127020000_cdc_versions_truncate_heartbeat'
                    AND finished_at IS NOT NULL AND rolled_back_at IS NULL) THEN
    RETURN;
  END IF;
  IF (SELECT count(*) FROM pg_trigger
       WHERE tgrelid = products AND tgenabled = 'A'
         AND tgname IN ('products_bump_version', 'products_record_price', 'products_truncate_epoch')) <> 3 THEN
    RAISE EXCEPTION 'products triggers products_bump_version, products_record_price and products_truncate_epoch must exist and be ENABLE ALWAYS (docs/architecture.md "Invalidation")';
  END IF;
  IF current_setting('flashsale.products_rewritten', true) = 'on' THEN
    PERFORM set_config('flashsale.products_rewritten', 'off', true);
    UPDATE public.products SET version = version;
    INSERT INTO public.product_price_history (product_id, version, list_price_cents, sale_price_cents, sale_starts_at, sale_ends_at)
      SELECT id, version, list_price_cents, sale_price_cents, sale_starts_at, sale_ends_at FROM public.products;
  END IF;
END
$fn$;
DO $do$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_event_trigger WHERE evtname = 'flashsale_products_rewrite_seen') THEN
    CREATE EVENT TRIGGER flashsale_products_rewrite_seen ON table_rewrite EXECUTE FUNCTION flashsale_products_rewrite_seen();
  END IF;
  IF NOT EXISTS (SELECT FROM pg_event_trigger WHERE evtname = 'flashsale_products_ddl_guard') THEN
    CREATE EVENT TRIGGER flashsale_products_ddl_guard ON ddl_command_end EXECUTE FUNCTION flashsale_products_ddl_guard();
  END IF;
  ALTER EVENT TRIGGER flashsale_products_rewrite_seen ENABLE ALWAYS;
  ALTER EVENT TRIGGER flashsale_products_ddl_guard ENABLE ALWAYS;
END
$do$;
-- end products DDL guard
