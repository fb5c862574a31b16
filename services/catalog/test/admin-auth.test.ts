import net from "node:net";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CatalogFixture, catalogFixture } from "./fixture.ts";

/**
 * Admin routes refuse a request without the bearer token before reading its body. The check
 * ran after body parsing, so anyone could make the catalog buffer a 16 MB import body per
 * request (or hold the connection trickling it for the whole request timeout) before hearing
 * 401: 60 concurrent unauthenticated 15 MB imports took a catalog from 160 MB to 400 MB RSS.
 * A real catalog app listening on loopback, with the real Postgres and Redis.
 */
const TOKEN = "auth-admin-token-0123456789";
let fx: CatalogFixture;
let app: FastifyInstance;
let port: number;

beforeAll(async () => {
  fx = await catalogFixture("catalog-auth-test", TOKEN);
  app = fx.app;
  await app.listen({ host: "127.0.0.1", port: 0 });
  port = (app.server.address() as net.AddressInfo).port;
});
afterAll(async () => {
  await fx?.close();
});

/** Sends only the head of a request announcing a large body; resolves with the first answer, or "" after `waitMs`. */
function headOnly(head: string, waitMs: number): Promise<string> {
  return new Promise((resolve) => {
    let received = "";
    const socket = net.connect(port, "127.0.0.1", () => socket.write(head));
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(received);
    };
    const timer = setTimeout(finish, waitMs);
    socket.on("data", (d) => {
      received += d.toString();
      if (received.includes("\r\n\r\n")) finish();
    });
    socket.on("error", finish);
  });
}

describe("admin bearer check", () => {
  it.each([
    ["no token", ""],
    ["a wrong token", "Authorization: Bearer not-the-token-0123456789\r\n"],
  ])("with %s, a 16 MB import is answered 401 before its body arrives", async (_name, auth) => {
    const answer = await headOnly(
      `POST /admin/import HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 16000000\r\n${auth}\r\nsku,listPriceCents\n`,
      2_000,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
  });

  it("with the token, the body is still read and validated", async () => {
    const res = await app.inject({
      method: "POST",
      url: "/admin/import",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "text/csv" },
      payload: "sku,listPriceCents\n",
    });
    expect([res.statusCode, res.json().error]).toEqual([400, "INVALID_IMPORT"]);
  });

  it("the scheme is case-insensitive (RFC 9110): bearer, BEARER and extra spaces carry the token", async () => {
    for (const authorization of [`bearer ${TOKEN}`, `BEARER ${TOKEN}`, `Bearer  ${TOKEN}`]) {
      const res = await app.inject({
        method: "POST",
        url: "/admin/import",
        headers: { authorization, "content-type": "text/csv" },
        payload: "sku,listPriceCents\n",
      });
      expect([res.statusCode, res.json().error], authorization).toEqual([400, "INVALID_IMPORT"]);
    }
    const wrong = await app.inject({ method: "POST", url: "/admin/import", headers: { authorization: `Basic ${TOKEN}` } });
    expect(wrong.statusCode).toBe(401);
  });
});
