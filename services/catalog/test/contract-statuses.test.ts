import net from "node:net";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CatalogFixture, catalogFixture } from "./fixture.ts";

/**
 * Statuses the catalog really answers are declared in /docs/json for that operation. fastify
 * parses a body on DELETE too, so DELETE /admin/products/:id answers 415 (an unsupported
 * content type) and 413 (over the body limit), which the document only declared for POST/PUT.
 * Real catalog app on the real Postgres and Redis.
 */
const TOKEN = "contract-admin-token-0123456789";
const admin = { authorization: `Bearer ${TOKEN}` };
let fx: CatalogFixture;
let app: FastifyInstance;

beforeAll(async () => {
  fx = await catalogFixture("catalog-contract-test", TOKEN);
  app = fx.app;
});
afterAll(async () => {
  await fx?.close();
});

interface Doc {
  paths: Record<string, Record<string, { responses: Record<string, unknown>; requestBody?: { content?: Record<string, unknown> } }>>;
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

/** One raw request on a fresh connection (no client-side URL normalisation); the whole answer. */
async function raw(path: string): Promise<{ status: number; headers: string; body: string }> {
  if (!app.server.listening) await app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = app.server.address() as net.AddressInfo;
  const text = await new Promise<string>((resolve) => {
    let received = "";
    const socket = net.connect(port, "127.0.0.1", () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    socket.on("data", (d) => {
      received += d.toString();
    });
    socket.on("error", () => {});
    socket.on("close", () => resolve(received));
  });
  const [head = "", body = ""] = text.split("\r\n\r\n");
  return { status: Number(head.split(" ")[1]), headers: head.toLowerCase(), body };
}

describe("URLs the router refuses before any route runs", () => {
  it.each([
    ["not valid percent-encoding", "/products/%FF", "BAD_REQUEST"],
    ["a path parameter over 100 characters", `/products/${"1".repeat(200)}`, "VALIDATION_FAILED"],
  ])("%s: 400 with a catalogue code and an X-Request-Id (was fastify's own body, 414 for the long one)", async (_name, path, code) => {
    const res = await raw(path);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error).toBe(code);
    expect(res.headers).toMatch(/\r\nx-request-id: [0-9a-f-]{36}/);
  });
});

describe("POST /admin/import: the document describes its body", () => {
  it("declares a CSV and a JSON-lines request body; a JSON or missing body is still 415", async () => {
    const doc = (await app.inject({ url: "/docs/json" })).json() as Doc;
    const content = doc.paths["/admin/import"]?.post?.requestBody?.content ?? {};
    expect(Object.keys(content).sort()).toEqual(["application/x-ndjson", "text/csv"]);
    const json = await app.inject({ method: "POST", url: "/admin/import", headers: admin, payload: { sku: "A", listPriceCents: 1 } });
    expect([json.statusCode, json.json().error]).toEqual([415, "UNSUPPORTED_MEDIA_TYPE"]);
    const none = await app.inject({ method: "POST", url: "/admin/import", headers: admin });
    expect([none.statusCode, none.json().error]).toEqual([415, "UNSUPPORTED_MEDIA_TYPE"]);
  });
});
