import net from "node:net";
import { StockGate } from "@flashsale/cache";
import { createDb, type Db } from "@flashsale/db";
import { createProductCache } from "@flashsale/product-cache";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { insertProduct, pgPool, redisClient, runId, TEST_ENV } from "@flashsale/testkit";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import type { Redis } from "ioredis";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCheckoutApp } from "../src/app.ts";

/**
 * Every header a checkout answer really carries is in the OpenAPI document (/docs/json) for
 * that operation and status. The fuzz run only checks that declared headers are right, so an
 * undeclared one went unnoticed: Idempotent-Replayed (201 replay) and Retry-After (429, 503)
 * were missing. Real Postgres and Redis; the 503 comes from a real unreachable database.
 */
const run = runId();
let pool: pg.Pool;
let redis: Redis;
const apps: FastifyInstance[] = [];
const dbs: Db[] = [];
// Sent by Node / fastify on every answer: transport, not the API.
const TRANSPORT = new Set(["content-type", "content-length", "date", "connection", "keep-alive", "transfer-encoding"]);

async function build(url: string, rateLimitMax: number): Promise<FastifyInstance> {
  const db = createDb({ url, poolMax: 2, connectTimeoutMs: 1_000 });
  dbs.push(db);
  const app = await buildCheckoutApp({
    db,
    redis,
    logger: createLogger("checkout-contract-test", "silent"),
    metrics: createMetricsRegistry("checkout-contract-test"),
    productCache: createProductCache({ redis, schemaVersion: 5_000 + Math.floor(Math.random() * 1_000), ttlSeconds: 3600, leaseMs: 2000 }),
    gate: new StockGate(redis),
    transactions: { limit: 2, queue: 10 },
    rateLimit: { max: rateLimitMax, windowMs: 60_000 },
  });
  apps.push(app);
  return app;
}

async function closedPortUrl(): Promise<string> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  const url = new URL(TEST_ENV.databaseUrl);
  url.port = String(port);
  return url.toString();
}

beforeAll(() => {
  pool = pgPool();
  redis = redisClient();
});
afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
  await Promise.all([pool.end(), redis.quit(), ...dbs.map((d) => d.$disconnect())]);
});

interface Doc {
  paths: Record<string, Record<string, { responses: Record<string, { headers?: Record<string, unknown> }> }>>;
}

/** The headers of `res` that the document does not declare for POST /carts/{id}/checkout at its status. */
async function undeclared(app: FastifyInstance, res: LightMyRequestResponse): Promise<string[]> {
  const doc = (await app.inject({ url: "/docs/json" })).json() as Doc;
  const declared = doc.paths["/carts/{id}/checkout"]?.post?.responses[String(res.statusCode)]?.headers ?? {};
  const names = new Set(Object.keys(declared).map((h) => h.toLowerCase()));
  return Object.keys(res.headers).filter((h) => !TRANSPORT.has(h) && !names.has(h));
}

describe("POST /carts/{id}/checkout: every header answered is documented", () => {
  it("201 replay (Idempotent-Replayed) and 429 (Retry-After)", async () => {
    const app = await build(TEST_ENV.databaseUrl, 1);
    const user = { "x-user-id": `contract-${run}` };
    const p = await insertProduct(pool, { sku: `CONTRACT-${run}`, listPriceCents: 1_000, stock: 10 });
    const cartId = (await app.inject({ method: "POST", url: "/carts", headers: user, payload: {} })).json().id as string;
    await app.inject({ method: "POST", url: `/carts/${cartId}/items`, headers: user, payload: { productId: p.id, quantity: 1 } });
    const send = (key: string) =>
      app.inject({ method: "POST", url: `/carts/${cartId}/checkout`, headers: { ...user, "idempotency-key": key } });

    expect((await send(`contract-${run}-a`)).statusCode).toBe(201);
    const replay = await send(`contract-${run}-a`);
    expect([replay.statusCode, replay.headers["idempotent-replayed"]]).toEqual([201, "true"]);
    expect(await undeclared(app, replay)).toEqual([]);

    const limited = await send(`contract-${run}-b`); // the second attempt past a limit of 1
    expect([limited.statusCode, limited.json().error]).toEqual([429, "RATE_LIMITED"]);
    expect(limited.headers["retry-after"]).toBeDefined();
    expect(await undeclared(app, limited)).toEqual([]);
  });

  it("503 DB_UNAVAILABLE (Retry-After)", async () => {
    const app = await build(await closedPortUrl(), 100);
    const res = await app.inject({
      method: "POST",
      url: "/carts/00000000-0000-4000-8000-000000000000/checkout",
      headers: { "idempotency-key": `contract-${run}-c` },
    });
    expect([res.statusCode, res.json().error, res.headers["retry-after"]]).toEqual([503, "DB_UNAVAILABLE", "1"]);
    expect(await undeclared(app, res)).toEqual([]);
  });
});
