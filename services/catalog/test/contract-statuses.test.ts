import { createDb, type Db } from "@flashsale/db";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { redisClient, TEST_ENV } from "@flashsale/testkit";
import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildCatalogApp } from "../src/app.ts";

/**
 * Statuses the catalog really answers are declared in /docs/json for that operation. fastify
 * parses a body on DELETE too, so DELETE /admin/products/:id answers 415 (an unsupported
 * content type) and 413 (over the body limit), which the document only declared for POST/PUT.
 * Real catalog app on the real Postgres and Redis.
 */
const TOKEN = "contract-admin-token-0123456789";
const admin = { authorization: `Bearer ${TOKEN}` };
let db: Db;
let redis: Redis;
let app: FastifyInstance;

beforeAll(async () => {
  db = createDb({ url: TEST_ENV.databaseUrl, poolMax: 2 });
  redis = redisClient();
  app = await buildCatalogApp({
    db,
    redis,
    logger: createLogger("catalog-contract-test", "silent"),
    metrics: createMetricsRegistry("catalog-contract-test"),
    adminToken: TOKEN,
    cache: { schemaVersion: 9_000 + Math.floor(Math.random() * 1000), ttlSeconds: 3600, leaseMs: 2000 },
  });
});
afterAll(async () => {
  await app?.close();
  await Promise.all([db?.$disconnect(), redis?.quit()]);
});

interface Doc {
  paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
}

describe("DELETE /admin/products/{id}: every status answered is documented", () => {
  it.each([
    ["415 for an unsupported content type", { "content-type": "application/xml" }, "<x/>", 415],
    ["413 for a body over the limit", { "content-type": "application/json" }, JSON.stringify({ pad: "x".repeat(70_000) }), 413],
  ])("%s", async (_name, headers, payload, status) => {
    const res = await app.inject({ method: "DELETE", url: "/admin/products/987654321", headers: { ...admin, ...headers }, payload });
    expect(res.statusCode).toBe(status);
    const doc = (await app.inject({ url: "/docs/json" })).json() as Doc;
    expect(Object.keys(doc.paths["/admin/products/{id}"]?.delete?.responses ?? {})).toContain(String(status));
  });
});
