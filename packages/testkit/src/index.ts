/**
 * Test-only helpers shared by the integration and e2e suites. They talk to the
 * real stack started by infra/native (or docker-compose); nothing here is a mock.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import pg from "pg";

const REPO_ROOT = new URL("../../../", import.meta.url).pathname;

/**
 * The test stack (test/stack.env, also sourced by scripts/test): its own database, Redis logical
 * database, topic prefix and ports, so tests never write to what scripts/up serves. A TEST_* variable
 * in the environment overrides a line of the file (e.g. on a Docker host); DATABASE_URL and friends
 * deliberately do not: they name the served stack.
 */
function readStackEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`${REPO_ROOT}test/stack.env`, "utf8").split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m?.[1]) out[m[1]] = process.env[m[1]] ?? (m[2] as string);
  }
  return out;
}
const STACK = readStackEnv();
function stack(name: string): string {
  const v = STACK[name];
  if (!v) throw new Error(`test/stack.env has no ${name}`);
  return v;
}

export const TEST_ENV = {
  databaseUrl: stack("TEST_DATABASE_URL"),
  /** A scratch database for tests that create and drop schema (migrator tests). */
  scratchDatabaseUrl: stack("TEST_SCRATCH_DATABASE_URL"),
  redisUrl: stack("TEST_REDIS_URL"),
  kafkaBrokers: stack("TEST_KAFKA_BROKERS").split(","),
  /** Topics of the test connector: `<prefix>.public.products` / `.inventory`. */
  kafkaTopicPrefix: stack("TEST_KAFKA_TOPIC_PREFIX"),
  kafkaGroupId: stack("TEST_KAFKA_GROUP_ID"),
};

/** The environment a service process of the test stack gets (spawnService, scripts/fuzz). */
export function testServiceEnv(): Record<string, string> {
  return {
    DATABASE_URL: TEST_ENV.databaseUrl,
    REDIS_URL: TEST_ENV.redisUrl,
    KAFKA_BROKERS: TEST_ENV.kafkaBrokers.join(","),
    KAFKA_TOPIC_PREFIX: TEST_ENV.kafkaTopicPrefix,
    KAFKA_GROUP_ID: TEST_ENV.kafkaGroupId,
  };
}

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. Never a fixed sleep. */
export async function waitFor<T>(
  probe: () => Promise<T | undefined>,
  opts: { timeoutMs: number; intervalMs?: number; what: string },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 5));
  }
}

export function pgPool(url = TEST_ENV.databaseUrl, max = 10): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 5_000, statement_timeout: 10_000 });
  pool.on("error", () => {}); // an idle client lost with a killed Postgres must not crash the process
  return pool;
}

export function redisClient(url = TEST_ENV.redisUrl): Redis {
  const r = new Redis(url, { commandTimeout: 2_000, connectTimeout: 2_000, lazyConnect: false });
  r.on("error", () => {}); // tests that kill Redis assert on outcomes, not on log noise
  return r;
}

/** A unique prefix per test run, so suites never see each other's rows. */
export function runId(): string {
  return randomUUID().slice(0, 8);
}

export interface TestProduct {
  id: number;
  sku: string;
}

/** Inserts products (with stock) directly in SQL, returns their ids. */
export async function insertProducts(
  pool: pg.Pool,
  rows: Array<{ sku: string; listPriceCents: number; stock: number; sale?: { priceCents: number; startsAt: Date; endsAt: Date } }>,
): Promise<TestProduct[]> {
  const out: TestProduct[] = [];
  for (const r of rows) {
    const { rows: inserted } = await pool.query<{ id: string }>(
      `WITH p AS (
         INSERT INTO products (sku, name, list_price_cents, sale_price_cents, sale_starts_at, sale_ends_at)
         VALUES ($1, $1, $2, $3, $4, $5) RETURNING id
       ), i AS (INSERT INTO inventory (product_id, available) SELECT id, $6 FROM p)
       SELECT id FROM p`,
      [r.sku, r.listPriceCents, r.sale?.priceCents ?? null, r.sale?.startsAt ?? null, r.sale?.endsAt ?? null, r.stock],
    );
    out.push({ id: Number(inserted[0]?.id), sku: r.sku });
  }
  return out;
}

/** p-th percentile (0..100) of a list of numbers, nearest-rank. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export async function insertProduct(pool: pg.Pool, row: Parameters<typeof insertProducts>[1][number]): Promise<TestProduct> {
  const [p] = await insertProducts(pool, [row]);
  if (!p) throw new Error("insert returned no product");
  return p;
}

/**
 * A private, real redis-server on its own port (no persistence), for tests that
 * kill and restart Redis without disturbing the shared stack.
 */
export class PrivateRedis {
  private proc: import("node:child_process").ChildProcess | null = null;
  readonly port: number;
  constructor(port: number) {
    this.port = port;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const { spawn } = await import("node:child_process");
    this.proc = spawn("redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: "ignore",
    });
    const probe = new Redis(this.url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on("error", () => {});
    await waitFor(
      async () => {
        try {
          await probe.connect();
          return (await probe.ping()) === "PONG" ? true : undefined;
        } catch {
          return undefined;
        }
      },
      { timeoutMs: 10_000, intervalMs: 20, what: `redis-server on ${this.port}` },
    );
    probe.disconnect();
  }

  /** kill -9: no goodbye to clients, like a crash. */
  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await exited;
  }
}

export interface ServiceProcess {
  url: string;
  stop(): Promise<void>;
}

/**
 * Runs a real service process (its main.ts, as scripts/up does) on `port` against the test
 * stack (testServiceEnv, overridable by `env`), and waits for /readyz. For tests and benchmarks that need several
 * processes (e.g. two catalog instances sharing Redis).
 */
export async function spawnService(
  name: "catalog" | "checkout" | "invalidator",
  port: number,
  env: Record<string, string>,
): Promise<ServiceProcess> {
  const { spawn } = await import("node:child_process");
  const proc = spawn(
    process.execPath,
    ["--import", "tsx", "--import", "./packages/telemetry/src/register.ts", `services/${name}/src/main.ts`],
    {
      cwd: REPO_ROOT,
      // FLASHSALE_DEV=1: a test stack may use the public default ADMIN_TOKEN (packages/config).
      env: {
        ...process.env,
        LOG_LEVEL: "warn",
        OTEL_SERVICE_NAME: name,
        FLASHSALE_DEV: "1",
        ...testServiceEnv(),
        ...env,
        PORT: String(port),
      },
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (proc.exitCode !== null) throw new Error(`${name} exited with ${proc.exitCode}`);
      try {
        return (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(500) })).ok ? true : undefined;
      } catch {
        return undefined;
      }
    },
    { timeoutMs: 30_000, intervalMs: 100, what: `${name} on :${port}` },
  );
  return {
    url,
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await exited;
    },
  };
}

/** Postgres executions of the catalog's product-by-id read (pg_stat_statements), to count DB reads. */
export async function productReadCount(pool: pg.Pool): Promise<number> {
  await pool.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
  const { rows } = await pool.query<{ calls: string }>(
    `SELECT coalesce(sum(calls), 0) AS calls FROM pg_stat_statements
     WHERE query LIKE '%product_next_price_boundary(p, now()) AS valid_until%' AND query LIKE '%WHERE p.id = $1%'`,
  );
  return Number(rows[0]?.calls ?? 0);
}

/**
 * A private 3-master Redis Cluster from the same redis-server binary (no replicas,
 * no persistence, its own ports and folder), for the cluster-mode tests.
 */
export class PrivateRedisCluster {
  private readonly servers: import("node:child_process").ChildProcess[] = [];
  readonly basePort: number;
  constructor(basePort: number) {
    this.basePort = basePort;
  }

  get nodes(): string[] {
    return [0, 1, 2].map((i) => `127.0.0.1:${this.basePort + i}`);
  }

  async start(): Promise<void> {
    const { spawn, execFileSync } = await import("node:child_process");
    const { mkdtempSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(`${tmpdir()}/flashsale-cluster-`);
    for (let i = 0; i < 3; i++) {
      const port = this.basePort + i;
      this.servers.push(
        spawn(
          "redis-server",
          [
            "--port",
            String(port),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            `${dir}/nodes-${port}.conf`,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            dir,
          ],
          { stdio: "ignore" },
        ),
      );
    }
    for (const n of this.nodes) {
      const [host, port] = n.split(":");
      await waitFor(
        async () => {
          const probe = new Redis({ host, port: Number(port), lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
          probe.on("error", () => {});
          try {
            await probe.connect();
            return (await probe.ping()) === "PONG" ? true : undefined;
          } catch {
            return undefined;
          } finally {
            probe.disconnect();
          }
        },
        { timeoutMs: 10_000, intervalMs: 50, what: `cluster node ${n}` },
      );
    }
    execFileSync("redis-cli", ["--cluster", "create", ...this.nodes, "--cluster-replicas", "0", "--cluster-yes"], {
      stdio: "ignore",
      timeout: 30_000,
    });
    const first = new Redis({ port: this.basePort, lazyConnect: true });
    first.on("error", () => {});
    await first.connect();
    await waitFor(async () => (String(await first.cluster("INFO")).includes("cluster_state:ok") ? true : undefined), {
      timeoutMs: 20_000,
      intervalMs: 100,
      what: "cluster_state:ok",
    });
    first.disconnect();
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.servers.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null) return resolve();
            p.once("exit", () => resolve());
            p.kill("SIGKILL");
          }),
      ),
    );
  }
}
