/**
 * Private processes for the freshness e2e tests (hang, schema rollout): service processes whose pid
 * the test owns (to SIGSTOP them), a private Redis per test file (the freshness watermark is one key
 * per Redis database, so only this file's invalidator may produce the one its catalogs read), and a
 * private Kafka Connect worker with its own Debezium connector, slot and topics (the shared worker
 * runs the served and the test connectors: it is never stopped by a test). All on the test stack's
 * database (test/stack.env).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { promisify } from "node:util";
import { TEST_ENV, testServiceEnv, waitFor } from "@flashsale/testkit";

const execFileP = promisify(execFile);
export const ROOT = new URL("../", import.meta.url).pathname;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface OwnedProcess {
  url: string;
  pid: number;
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

function owned(proc: ChildProcess, url: string): OwnedProcess {
  let paused = false;
  return {
    url,
    pid: proc.pid as number,
    pause() {
      proc.kill("SIGSTOP");
      paused = true;
    },
    resume() {
      if (paused) proc.kill("SIGCONT");
      paused = false;
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      if (paused) proc.kill("SIGCONT");
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGKILL");
      await exited;
    },
  };
}

/** A service's main.ts on the test stack (overridden by `env`), ready on /readyz; the test owns its pid. */
export async function startService(name: "catalog" | "invalidator", env: Record<string, string>): Promise<OwnedProcess> {
  const port = await freePort();
  const proc = spawn(process.execPath, ["--import", "tsx", `services/${name}/src/main.ts`], {
    cwd: ROOT,
    env: {
      ...process.env,
      LOG_LEVEL: "warn",
      FLASHSALE_DEV: "1",
      ...testServiceEnv(),
      CONSISTENCY_CHECK_INTERVAL_MS: "0",
      // A private pipeline has its own watermark producer: the staleness bound as in production.
      CACHE_STALENESS_BOUND_MS: "2000",
      CACHE_UNPUBLISHED_WATERMARK: "old",
      ...env,
      PORT: String(port),
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const url = `http://127.0.0.1:${port}`;
  const p = owned(proc, url);
  let last = "no answer yet";
  try {
    await waitFor(
      async () => {
        if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${name} exited (${proc.exitCode ?? proc.signalCode})`);
        const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) }).catch((e: Error) => e);
        if (res instanceof Error) last = res.message;
        else if (res.ok) return true;
        else last = `${res.status} ${(await res.text()).slice(0, 300)}`;
        return undefined;
      },
      { timeoutMs: 90_000, intervalMs: 100, what: `${name} on :${port}` },
    );
  } catch (err) {
    await p.stop();
    throw new Error(`${(err as Error).message}; last /readyz: ${last}`);
  }
  return p;
}

/** A private redis-server (no persistence) whose pid the test owns. */
export async function startRedis(): Promise<OwnedProcess> {
  const port = await freePort();
  const proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  await waitFor(
    async () =>
      execFileP("redis-cli", ["-p", String(port), "ping"]).then(
        (r) => (r.stdout.trim() === "PONG" ? true : undefined),
        () => undefined,
      ),
    { timeoutMs: 10_000, intervalMs: 50, what: `redis-server on ${port}` },
  );
  return owned(proc, `redis://127.0.0.1:${port}`);
}

/**
 * A private Kafka Connect worker (same jars and settings as infra/native's, its own group, internal
 * topics and REST port) running its own Debezium connector on the test database, with its own slot
 * and topic prefix. stop() deletes the connector and drops the slot (an abandoned slot would keep
 * WAL forever).
 */
export class PrivateConnect {
  readonly name: string;
  readonly slot: string;
  readonly topicPrefix: string;
  private proc: ChildProcess | null = null;
  private worker: OwnedProcess | null = null;
  private port = 0;
  private dir = "";

  private readonly bootstrap: string | null;

  /** `bootstrap`: the Kafka it uses (default: the shared broker of infra/kafka/connect.properties). */
  constructor(id: string, bootstrap?: string) {
    this.bootstrap = bootstrap ?? null;
    // Fixed per id: its internal topics and the connector's topics are reused across runs.
    this.name = `flashsale-test-${id}`;
    this.slot = `flashsale_test_${id.replaceAll("-", "_")}_slot`;
    this.topicPrefix = `flashsale_test_${id.replaceAll("-", "_")}`;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get pid(): number {
    return this.worker?.pid ?? 0;
  }
  pause(): void {
    this.worker?.pause();
  }
  resume(): void {
    this.worker?.resume();
  }

  async start(): Promise<void> {
    this.port = await freePort();
    const dir = mkdtempSync(`${tmpdir()}/flashsale-connect-`);
    this.dir = dir;
    const base = readFileSync(`${ROOT}infra/kafka/connect.properties`, "utf8");
    const props = `${base
      .split("\n")
      .filter((l) => !/^(group\.id|listeners|rest\.advertised\.port|(config|offset|status)\.storage\.topic)=/.test(l))
      .filter((l) => !(this.bootstrap && l.startsWith("bootstrap.servers=")))
      .join("\n")}
${this.bootstrap ? `bootstrap.servers=${this.bootstrap}\n` : ""}group.id=${this.name}-worker
listeners=http://127.0.0.1:${this.port}
rest.advertised.port=${this.port}
config.storage.topic=${this.name}-configs
offset.storage.topic=${this.name}-offsets
status.storage.topic=${this.name}-status
`;
    writeFileSync(`${dir}/connect.properties`, props);
    this.proc = spawn(
      process.env.JAVA_HOME ? `${process.env.JAVA_HOME}/bin/java` : "java",
      [
        "-Xms128m",
        "-Xmx384m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        `-Dlog4j2.configurationFile=${ROOT}infra/kafka/log4j2.properties`,
        "-cp",
        `${ROOT}.state/jars/connect/*`,
        "org.apache.kafka.connect.cli.ConnectDistributed",
        `${dir}/connect.properties`,
      ],
      { stdio: "ignore" },
    );
    this.worker = owned(this.proc, this.url);
    await this.register([]);
  }

  private async register(args: string[]): Promise<void> {
    const db = new URL(TEST_ENV.databaseUrl);
    await execFileP(`${ROOT}infra/native/register-connector`, args, {
      timeout: 120_000,
      env: {
        ...process.env,
        FLASHSALE_CONNECT_URL: this.url,
        FLASHSALE_CONNECTOR_NAME: this.name,
        FLASHSALE_CDC_DB: db.pathname.slice(1),
        FLASHSALE_CDC_DB_PORT: db.port || "5432",
        FLASHSALE_CDC_SLOT: this.slot,
        FLASHSALE_CDC_TOPIC_PREFIX: this.topicPrefix,
        FLASHSALE_CONNECTOR_TIMEOUT: "90",
      },
    });
  }

  async stop(): Promise<void> {
    if (!this.worker) return;
    this.worker.resume();
    await this.register(["--delete"]).catch(() => {});
    await this.worker.stop();
    this.worker = null;
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    // The slot becomes inactive once the worker's replication connection is gone.
    // Dropping a slot takes the REPLICATION attribute: the Debezium role of the connector JSON.
    const url = new URL(TEST_ENV.databaseUrl);
    url.username = process.env.FLASHSALE_CDC_DB_USER ?? "debezium";
    url.password = process.env.FLASHSALE_CDC_DB_PASSWORD ?? "debezium";
    const drop = `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${this.slot}' AND NOT active`;
    // Never throws: a caller's other clean-ups must still run; a slot left behind is reported loudly.
    await waitFor(
      async () => {
        await execFileP("psql", [url.toString(), "-qAtc", drop], { timeout: 10_000 });
        const { stdout } = await execFileP("psql", [
          url.toString(),
          "-qAtc",
          `SELECT count(*) FROM pg_replication_slots WHERE slot_name = '${this.slot}'`,
        ]);
        return stdout.trim() === "0" ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250, what: `replication slot ${this.slot} dropped` },
    ).catch((err) => console.error(`PrivateConnect: ${(err as Error).message}: drop it by hand (it keeps WAL)`));
  }
}

/** psql, as an operator would type it: this write never passes through our code. */
export async function psql(sql: string): Promise<void> {
  await execFileP("psql", [TEST_ENV.databaseUrl, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql], { timeout: 10_000 });
}

/** Polls GET /products/:id until it answers `priceCents`; returns ms from `since` (performance.now()). */
export async function servedWithin(catalogUrl: string, id: number, priceCents: number, since: number, timeoutMs: number): Promise<number> {
  let last = "";
  try {
    return await waitFor(
      async () => {
        const res = await fetch(`${catalogUrl}/products/${id}`, { signal: AbortSignal.timeout(2_000) }).catch(() => null);
        if (res?.status !== 200) return undefined;
        const body = (await res.json()) as { priceCents: number };
        last = `${body.priceCents} (X-Cache ${res.headers.get("x-cache")})`;
        return body.priceCents === priceCents ? performance.now() - since : undefined;
      },
      { timeoutMs, intervalMs: 20, what: `price ${priceCents} of product ${id} at ${catalogUrl}` },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last answer: ${last}`);
  }
}

/** GET until the answer is a cache hit (so the next change must be seen through an eviction or the bound). */
export async function cached(catalogUrl: string, id: number, timeoutMs = 10_000): Promise<void> {
  await waitFor(
    async () => {
      const res = await fetch(`${catalogUrl}/products/${id}`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      return res.headers.get("x-cache")?.startsWith("HIT") ? true : undefined; // HIT or HIT-L1
    },
    { timeoutMs, intervalMs: 20, what: `a cache hit for product ${id} at ${catalogUrl}` },
  );
}

/**
 * A private single-node Kafka (KRaft broker + controller, the jars and settings of infra/native, its own
 * ports and a temporary log dir), for a test that stops Kafka without touching the shared broker.
 */
export class PrivateKafka {
  private worker: OwnedProcess | null = null;
  private dir = "";
  port = 0;

  get brokers(): string {
    return `127.0.0.1:${this.port}`;
  }
  pause(): void {
    this.worker?.pause();
  }
  resume(): void {
    this.worker?.resume();
  }

  async start(): Promise<void> {
    this.port = await freePort();
    const controller = await freePort();
    const dir = mkdtempSync(`${tmpdir()}/flashsale-kafka-`);
    this.dir = dir;
    const base = readFileSync(`${ROOT}infra/kafka/server.properties`, "utf8");
    const props = `${base
      .split("\n")
      .filter((l) => !/^(controller\.quorum\.voters|listeners|advertised\.listeners|log\.dirs)=/.test(l))
      .join("\n")}
controller.quorum.voters=1@127.0.0.1:${controller}
listeners=PLAINTEXT://127.0.0.1:${this.port},CONTROLLER://127.0.0.1:${controller}
advertised.listeners=PLAINTEXT://127.0.0.1:${this.port}
log.dirs=${dir}/data
`;
    writeFileSync(`${dir}/server.properties`, props);
    const java = process.env.JAVA_HOME ? `${process.env.JAVA_HOME}/bin/java` : "java";
    const jopts = [
      "-Djava.awt.headless=true",
      `-Dlog4j2.configurationFile=${ROOT}infra/kafka/log4j2.properties`,
      "-cp",
      `${ROOT}.state/jars/kafka/*`,
    ];
    // A cluster id is 16 random bytes, base64url without padding; --cluster-id=<id> because it may start with '-'.
    const id = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64url");
    await execFileP(java, [...jopts, "kafka.tools.StorageTool", "format", `--cluster-id=${id}`, "-c", `${dir}/server.properties`], {
      timeout: 60_000,
    });
    const proc = spawn(
      java,
      ["-Xms128m", "-Xmx384m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", ...jopts, "kafka.Kafka", `${dir}/server.properties`],
      {
        stdio: "ignore",
      },
    );
    this.worker = owned(proc, this.brokers);
    await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`private kafka exited (${proc.exitCode})`);
        const { Kafka, logLevel } = await import("kafkajs");
        const admin = new Kafka({ brokers: [this.brokers], logLevel: logLevel.NOTHING, retry: { retries: 0 } }).admin();
        try {
          await admin.connect();
          await admin.listTopics();
          return true;
        } catch {
          return undefined;
        } finally {
          await admin.disconnect().catch(() => {});
        }
      },
      { timeoutMs: 60_000, intervalMs: 250, what: `private kafka on ${this.port}` },
    );
  }

  async stop(): Promise<void> {
    await this.worker?.stop();
    this.worker = null;
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Waits until a raw-SQL change to a cached product is served by the catalog within 5 s: the
 * pipeline (connector, topics, invalidator) feeding `catalogUrl` is live. `probeId` is a product of
 * the test's own, its list price starting at 100.
 */
export async function pipelineServesChanges(catalogUrl: string, probeId: number, opts: { timeoutMs: number; what: string }): Promise<void> {
  let price = 100;
  await waitFor(async () => {
    if (
      !(await cached(catalogUrl, probeId).then(
        () => true,
        () => false,
      ))
    )
      return undefined;
    price++;
    await psql(`UPDATE products SET list_price_cents = ${price} WHERE id = ${probeId}`);
    return servedWithin(catalogUrl, probeId, price, performance.now(), 5_000).catch(() => undefined);
  }, opts);
}

/**
 * The hang check of issue 10 (the four hang e2e tests): with `paused` stopped, two raw-SQL changes of
 * product `id` (whose list price is `basePrice` and already cached) — one right at the start of the
 * pause (the watermark was fresh, so it waits out Δ), one well into it (the watermark is older than
 * Δ: every hit is revalidated) — and how long each took to be served (ms; each throws past
 * `limitMs`). `paused` is always resumed.
 */
export async function changesServedWhilePaused(
  catalogUrl: string,
  id: number,
  basePrice: number,
  paused: Pick<OwnedProcess, "pause" | "resume">,
  limitMs: number,
): Promise<[first: number, second: number]> {
  paused.pause();
  try {
    let t0 = performance.now();
    await psql(`UPDATE products SET list_price_cents = ${basePrice + 1} WHERE id = ${id}`);
    const first = await servedWithin(catalogUrl, id, basePrice + 1, t0, limitMs);
    await new Promise((r) => setTimeout(r, 1_500));
    t0 = performance.now();
    await psql(`UPDATE products SET list_price_cents = ${basePrice + 2} WHERE id = ${id}`);
    const second = await servedWithin(catalogUrl, id, basePrice + 2, t0, limitMs);
    return [first, second];
  } finally {
    paused.resume();
  }
}
