import { pgPool, TEST_ENV } from "@flashsale/testkit";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Least privilege (infra/postgres/init.sql): the services' role reads and writes rows and nothing
// more, Debezium's role replicates and reads the captured tables, the owner is no superuser.

function as(user: string, password: string): string {
  const url = new URL(TEST_ENV.databaseUrl);
  url.username = user;
  url.password = password;
  return url.toString();
}
const APP = as("flashsale_app", process.env.TEST_APP_DB_PASSWORD ?? "flashsale_app");
const CDC = as("debezium", process.env.TEST_CDC_DB_PASSWORD ?? "debezium");

let owner: pg.Pool;
let app: pg.Client;
let cdc: pg.Client;

beforeAll(async () => {
  owner = pgPool(TEST_ENV.databaseUrl, 2);
  app = new pg.Client({ connectionString: APP, connectionTimeoutMillis: 5_000 });
  cdc = new pg.Client({ connectionString: CDC, connectionTimeoutMillis: 5_000 });
  await Promise.all([app.connect(), cdc.connect()]);
});
afterAll(async () => {
  await Promise.all([app.end(), cdc.end(), owner.end()]);
});

/** The SQLSTATE a statement fails with ("" if it succeeded). */
async function sqlstate(client: pg.Client, sql: string): Promise<string> {
  try {
    await client.query(sql);
    return "";
  } catch (err) {
    return String((err as { code?: string }).code);
  }
}
const DENIED = "42501"; // insufficient_privilege

describe("Postgres roles", () => {
  it("the services' role is no superuser and owns nothing", async () => {
    const { rows } = await owner.query(
      `SELECT r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication, r.rolbypassrls,
              (SELECT count(*) FROM pg_class WHERE relowner = r.oid)::int AS relations,
              (SELECT count(*) FROM pg_proc WHERE proowner = r.oid)::int AS functions,
              (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid)::int AS schemas,
              (SELECT count(*) FROM pg_database WHERE datdba = r.oid)::int AS databases
         FROM pg_roles r WHERE r.rolname = 'flashsale_app'`,
    );
    expect(rows[0]).toEqual({
      rolsuper: false,
      rolcreatedb: false,
      rolcreaterole: false,
      rolreplication: false,
      rolbypassrls: false,
      relations: 0,
      functions: 0,
      schemas: 0,
      databases: 0,
    });
  });

  it("the services' role reads and writes rows", async () => {
    const { rows } = await app.query<{ id: string }>("INSERT INTO carts DEFAULT VALUES RETURNING id");
    expect((await app.query("SELECT count(*) FROM products")).rowCount).toBe(1);
    await app.query("DELETE FROM carts WHERE id = $1", [rows[0]?.id]);
  });

  it("the services' role cannot change the schema, switch triggers off or create databases", async () => {
    expect(await sqlstate(app, "ALTER TABLE products ADD COLUMN roles_test int")).toBe(DENIED);
    expect(await sqlstate(app, "ALTER TABLE products DISABLE TRIGGER USER")).toBe(DENIED);
    expect(await sqlstate(app, "SET session_replication_role = replica")).toBe(DENIED);
    expect(await sqlstate(app, "CREATE TABLE roles_test (x int)")).toBe(DENIED);
    expect(await sqlstate(app, "DROP TABLE carts")).toBe(DENIED);
    expect(await sqlstate(app, "TRUNCATE carts")).toBe(DENIED);
    expect(await sqlstate(app, "CREATE DATABASE roles_test")).toBe(DENIED);
    expect(await sqlstate(app, "CREATE PUBLICATION roles_test FOR TABLE products")).toBe(DENIED);
  });

  it("the services' role can append to the price history (the trigger) but not rewrite it, nor the migrations ledger", async () => {
    expect(await sqlstate(app, "UPDATE product_price_history SET list_price_cents = list_price_cents WHERE false")).toBe(DENIED);
    expect(await sqlstate(app, "DELETE FROM product_price_history WHERE false")).toBe(DENIED);
    expect(await sqlstate(app, "DELETE FROM _prisma_migrations WHERE false")).toBe(DENIED);
    const { rows } = await owner.query(
      `SELECT privilege_type FROM information_schema.role_table_grants
        WHERE grantee = 'flashsale_app' AND table_name = 'product_price_history' ORDER BY 1`,
    );
    expect(rows.map((r) => r.privilege_type)).toEqual(["INSERT", "SELECT"]);
  });

  it("Debezium's role replicates and reads the captured tables, and bumps its heartbeat rows, nothing else", async () => {
    const role = await owner.query("SELECT rolsuper, rolreplication, rolcreatedb FROM pg_roles WHERE rolname = 'debezium'");
    expect(role.rows[0]).toEqual({ rolsuper: false, rolreplication: true, rolcreatedb: false });
    const grants = await owner.query(
      `SELECT table_name, privilege_type FROM information_schema.role_table_grants
        WHERE grantee = 'debezium' ORDER BY table_name, privilege_type`,
    );
    // cache_epochs and cdc_heartbeat travel the pipeline too; heartbeat.action.query updates the
    // heartbeat rows (docs/architecture.md "Freshness").
    expect(grants.rows).toEqual([
      { table_name: "cache_epochs", privilege_type: "SELECT" },
      { table_name: "cdc_heartbeat", privilege_type: "SELECT" },
      { table_name: "cdc_heartbeat", privilege_type: "UPDATE" },
      { table_name: "inventory", privilege_type: "SELECT" },
      { table_name: "products", privilege_type: "SELECT" },
    ]);
    expect(await sqlstate(cdc, "SELECT 1 FROM products LIMIT 1")).toBe("");
    expect(await sqlstate(cdc, "SELECT 1 FROM carts LIMIT 1")).toBe(DENIED);
    expect(await sqlstate(cdc, "UPDATE products SET name = name WHERE false")).toBe(DENIED);
  });

  it("Debezium's role may open a logical replication connection, never a physical one (a copy of the cluster)", async () => {
    const replication = async (mode: "database" | true) => {
      const c = new pg.Client({ connectionString: CDC, connectionTimeoutMillis: 5_000, replication: mode } as pg.ClientConfig);
      try {
        await c.connect();
        await c.query("IDENTIFY_SYSTEM");
        return "ok";
      } catch (err) {
        return String((err as Error).message);
      } finally {
        await c.end().catch(() => {});
      }
    };
    expect(await replication("database")).toBe("ok");
    expect(await replication(true)).toMatch(/no pg_hba.conf entry for replication connection/);
  });

  it("the owner (migrations, tests) is no superuser either, and owns the schema", async () => {
    const { rows } = await owner.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user");
    expect(rows[0]).toEqual({ rolsuper: false });
    const tables = await owner.query("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'");
    expect(tables.rows).toEqual([{ tableowner: "flashsale" }]);
  });
});
