-- flashsale bootstrap: roles and databases only (tables and the publication belong to the
-- app's migrations). Idempotent; run as a superuser connected to database "postgres":
--   native: infra/native/up runs it on every `up postgres`
--   docker: mounted into /docker-entrypoint-initdb.d/ (runs once, on an empty volume)

-- App role: owner of both databases. SUPERUSER so migrations can create triggers/publications.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'flashsale') THEN
    CREATE ROLE flashsale LOGIN SUPERUSER PASSWORD 'flashsale';
  ELSE
    ALTER ROLE flashsale LOGIN SUPERUSER PASSWORD 'flashsale';
  END IF;
  -- Debezium: logical replication over pgoutput. SELECT on the captured tables and the
  -- publication flashsale_pub are granted/created by the app's migrations.
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'debezium') THEN
    CREATE ROLE debezium LOGIN REPLICATION PASSWORD 'debezium';
  ELSE
    ALTER ROLE debezium LOGIN REPLICATION PASSWORD 'debezium';
  END IF;
END
$$;

SELECT 'CREATE DATABASE flashsale OWNER flashsale'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'flashsale') \gexec
-- The test stack's own databases (test/stack.env): tests never touch flashsale.
SELECT 'CREATE DATABASE flashsale_test OWNER flashsale'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'flashsale_test') \gexec
SELECT 'CREATE DATABASE flashsale_scratch OWNER flashsale'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'flashsale_scratch') \gexec
