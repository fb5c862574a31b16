import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { runId, TEST_ENV, testServiceEnv, waitFor } from "@flashsale/testkit";
import { Kafka, logLevel } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerIgnored, ROOT, run } from "./tools.ts";

// A rehearsal of the Dockerfile's production stage without a Docker engine: the build context
// (.dockerignore applied), `pnpm install --offline --frozen-lockfile --prod`, the generated Prisma
// client; then every service and the migration step run from that tree exactly as the image runs
// them (Node's type stripping, no tsx), as the unprivileged database role.

const TREE = `${ROOT}.state/image-rehearsal`;
const SECRET = "a-real-admin-secret-0123456789";
// The invalidator started here consumes topics and a group of its own (deleted afterwards), so it
// never applies the test stack's events a second time (stock-gate writes are not fenced); both are
// named under the test stack's prefix, so nothing of this run can be mistaken for the served stack's.
const TAG = runId();
const TOPIC_PREFIX = `${TEST_ENV.kafkaTopicPrefix}_image_${TAG}`;
const GROUP = `${TEST_ENV.kafkaTopicPrefix}-image-${TAG}`;
let installMs = 0;
const procs: ChildProcess[] = [];

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

/** The environment of a production process: nothing inherited that could switch development mode on. */
function prodEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const { FLASHSALE_DEV: _d, ADMIN_TOKEN: _a, OTEL_EXPORTER_OTLP_ENDPOINT: _o, NODE_OPTIONS: _n, ...rest } = process.env;
  const app = new URL(TEST_ENV.databaseUrl);
  app.username = "flashsale_app";
  app.password = process.env.TEST_APP_DB_PASSWORD ?? "flashsale_app";
  return { ...rest, ...testServiceEnv(), NODE_ENV: "production", LOG_LEVEL: "warn", DATABASE_URL: app.toString(), ...extra };
}

function start(service: string, env: NodeJS.ProcessEnv): { proc: ChildProcess; stderr: () => string } {
  const proc = spawn(process.execPath, ["--import", "./packages/telemetry/src/register.ts", `services/${service}/src/main.ts`], {
    cwd: TREE,
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  procs.push(proc);
  let err = "";
  proc.stderr?.on("data", (b) => {
    err += String(b);
  });
  return { proc, stderr: () => err };
}

async function ready(service: string, port: number, env: Record<string, string>): Promise<string> {
  const { proc, stderr } = start(service, prodEnv({ ...env, PORT: String(port) }));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (proc.exitCode !== null) throw new Error(`${service} exited ${proc.exitCode}: ${stderr()}`);
      const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1_000) }).catch(() => null);
      return r?.ok ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 100, what: `${service} from the production tree` },
  );
  return url;
}

async function exitOf(proc: ChildProcess, timeoutMs: number): Promise<number | null> {
  if (proc.exitCode !== null) return proc.exitCode;
  return await Promise.race([
    new Promise<number | null>((r) => proc.once("exit", (code) => r(code))),
    new Promise<number | null>((_, rej) => setTimeout(() => rej(new Error(`still running after ${timeoutMs} ms`)), timeoutMs)),
  ]);
}

beforeAll(() => {
  rmSync(TREE, { recursive: true, force: true });
  const ignored = dockerIgnored();
  // Entry by entry: the tree lives under the context's ignored .state/, so one recursive copy of
  // the root would copy into itself.
  mkdirSync(TREE, { recursive: true });
  for (const entry of readdirSync(ROOT)) {
    if (ignored(entry)) continue;
    cpSync(`${ROOT}${entry}`, `${TREE}/${entry}`, {
      recursive: true,
      filter: (src) => !ignored(src.slice(ROOT.length)),
    });
  }
  const t0 = Date.now();
  const install = run("pnpm", ["install", "--offline", "--frozen-lockfile", "--prod", "--reporter=silent"], {
    cwd: TREE,
    env: { ...process.env, CI: "true" },
  });
  expect(install.status, install.stderr + install.stdout).toBe(0);
  const prune = run(process.execPath, ["deploy/image/prune-peers.mjs", "prisma", "typescript"], { cwd: TREE });
  expect(prune.status, prune.stderr).toBe(0);
  installMs = Date.now() - t0;
  // The build stage's product (Dockerfile: COPY --from=build .../generated).
  cpSync(`${ROOT}packages/db/src/generated`, `${TREE}/packages/db/src/generated`, { recursive: true });
});

afterAll(async () => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
  await Promise.all(procs.map((p) => exitOf(p, 10_000).catch(() => p.kill("SIGKILL"))));
  rmSync(TREE, { recursive: true, force: true });
  const admin = new Kafka({
    brokers: TEST_ENV.kafkaBrokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5_000,
    requestTimeout: 10_000,
  }).admin();
  await admin.connect();
  try {
    const ours = (await admin.listTopics()).filter((t) => t.startsWith(`${TOPIC_PREFIX}.`));
    if (ours.length > 0) await admin.deleteTopics({ topics: ours, timeout: 10_000 });
    await admin.deleteGroups([GROUP]).catch(() => {});
  } finally {
    await admin.disconnect();
  }
});

describe("the image's production tree", () => {
  it("runs on the Node.js that package.json's engines ask for", () => {
    const min = /(\d+)/.exec(JSON.parse(readFileSync(`${ROOT}package.json`, "utf8")).engines.node)?.[1];
    expect(Number(process.versions.node.split(".")[0])).toBeGreaterThanOrEqual(Number(min));
    expect(min).toBe("24");
  });

  it("holds no dev dependency and no test code", () => {
    console.log(`production install (offline, --prod, pruned): ${installMs} ms`);
    const store = readdirSync(`${TREE}/node_modules/.pnpm`);
    // prisma (the CLI) and typescript: optional peers of @prisma/client, pruned (Dockerfile).
    for (const dev of ["tsx@", "vitest@", "typescript@", "@biomejs+biome@", "prisma@", "@prisma+studio-core@", "autocannon@", "esbuild@"]) {
      expect(
        store.filter((d) => d.startsWith(dev)),
        dev,
      ).toEqual([]);
    }
    expect(store.some((d) => d.startsWith("fastify@"))).toBe(true);
    expect(existsSync(`${TREE}/packages/db/test`)).toBe(false);
    expect(existsSync(`${TREE}/test`)).toBe(false);
    expect(existsSync(`${TREE}/.state`)).toBe(false);
  });

  it("runs the migration step (as the owner role)", () => {
    const r = run(process.execPath, ["packages/db/src/migrate-cli.ts"], {
      cwd: TREE,
      env: prodEnv({ DATABASE_URL: TEST_ENV.databaseUrl }),
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/already up to date/);
  });

  it("starts all three services with Node's type stripping, as the app role, and they serve", async () => {
    const tag = TAG;
    const schema = String(20_000 + Math.floor(Math.random() * 10_000));
    const [cp, kp, ip] = [await freePort(), await freePort(), await freePort()];
    const catalog = await ready("catalog", cp, { ADMIN_TOKEN: SECRET, CACHE_SCHEMA_VERSION: schema });
    const checkout = await ready("checkout", kp, { CACHE_SCHEMA_VERSION: schema });
    const invalidator = await ready("invalidator", ip, {
      CACHE_SCHEMA_VERSION: schema,
      KAFKA_GROUP_ID: GROUP,
      KAFKA_TOPIC_PREFIX: TOPIC_PREFIX,
      CONSISTENCY_CHECK_INTERVAL_MS: "0",
    });
    const admin = { authorization: `Bearer ${SECRET}`, "content-type": "application/json" };
    const created = await fetch(`${catalog}/admin/products`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ sku: `IMG-${tag}`, name: "image rehearsal", listPriceCents: 1500, stock: 5 }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: number };
    expect((await fetch(`${catalog}/products/${id}`)).status).toBe(200);
    const price = await fetch(`${catalog}/admin/products/${id}/price`, {
      method: "PUT",
      headers: admin,
      body: JSON.stringify({ listPriceCents: 1400 }),
    });
    expect(price.status).toBe(200);
    const devToken = await fetch(`${catalog}/admin/products/${id}/price`, {
      method: "PUT",
      headers: { ...admin, authorization: "Bearer dev-admin-token-change-me" },
      body: JSON.stringify({ listPriceCents: 1 }),
    });
    expect(devToken.status).toBe(401);

    const json = { "content-type": "application/json" };
    const cart = (await (await fetch(`${checkout}/carts`, { method: "POST", headers: json, body: "{}" })).json()) as { id: string };
    const add = await fetch(`${checkout}/carts/${cart.id}/items`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ productId: id, quantity: 2 }),
    });
    expect(add.status).toBe(201);
    const order = await fetch(`${checkout}/carts/${cart.id}/checkout`, {
      method: "POST",
      headers: { ...json, "idempotency-key": `img-${tag}` },
      body: "{}",
    });
    expect(order.status, await order.clone().text()).toBe(201);
    expect(((await order.json()) as { totalCents: number }).totalCents).toBe(2800);
    expect((await fetch(`${invalidator}/readyz`)).status).toBe(200);
  });

  it("the catalog refuses the public default ADMIN_TOKEN outside development mode, naming the variable", async () => {
    const cases: Record<string, string>[] = [{}, { ADMIN_TOKEN: "dev-admin-token-change-me" }];
    for (const extra of cases) {
      const { proc, stderr } = start("catalog", prodEnv({ ...extra, PORT: String(await freePort()) }));
      const code = await exitOf(proc, 20_000);
      expect(code).not.toBe(0);
      expect(stderr()).toMatch(/ADMIN_TOKEN: ADMIN_TOKEN is unset or the public development default/);
    }
    // The switch is explicit: development mode accepts it.
    const port = await freePort();
    await ready("catalog", port, { ADMIN_TOKEN: "dev-admin-token-change-me", FLASHSALE_DEV: "1" });
  });
});
