import { createLogger } from "@flashsale/telemetry";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorBodySchema, HttpError, protectWithBearer } from "../src/index.ts";
import { createServiceBase } from "../src/service-base.ts";

/**
 * What every service gets from createServiceBase: request ids (kept from X-Request-Id or
 * generated, echoed), RED metrics per route pattern, and an API contract that documents what
 * the shared code sends (X-Request-Id, 400/500/503, the admin security scheme) plus a
 * reference page at /docs.
 */
let app: FastifyInstance;
let base = "";
const metrics = new Registry();

beforeAll(async () => {
  app = await createServiceBase({ title: "probe", logger: createLogger("probe", "silent"), metrics, readiness: [] });
  app.get<{ Params: { id: string } }>(
    "/things/:id",
    {
      schema: {
        params: { type: "object", properties: { id: { type: "string", pattern: "^[0-9]+$" } } },
        response: { 200: { type: "object", properties: { id: { type: "string" } } }, 404: errorBodySchema },
      },
    },
    async (req) => {
      if (req.params.id === "0") throw new HttpError(404, "NOT_FOUND", "no thing 0");
      return { id: req.params.id };
    },
  );
  await app.register(async (admin) => {
    protectWithBearer(admin, "a-token-of-sixteen-chars");
    admin.post("/admin/things", { schema: { body: { type: "object" } } }, async () => ({ ok: true }));
  });
  // Over a real socket: request ids are assigned on Node's request event (inject() bypasses it).
  await app.listen({ host: "127.0.0.1", port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await app.close();
});

async function countFor(route: string, status: number): Promise<number> {
  const m = (await metrics.getSingleMetric("http_request_duration_seconds")?.get()) as
    | { values: { metricName?: string; labels: Record<string, string | number>; value: number }[] }
    | undefined;
  const v = m?.values.find(
    (x) =>
      x.metricName === "http_request_duration_seconds_count" && x.labels.route === route && String(x.labels.status_code) === String(status),
  );
  return v?.value ?? 0;
}

describe("request ids", () => {
  it("keeps a plausible inbound X-Request-Id and echoes it", async () => {
    const res = await fetch(`${base}/things/7`, { headers: { "x-request-id": "gw-1234:abcd" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("gw-1234:abcd");
  });

  it("generates one when there is none or the inbound one is not a safe id, also on errors", async () => {
    const none = await fetch(`${base}/things/0`);
    const bad = await fetch(`${base}/things/8`, { headers: { "x-request-id": `has spaces "and quotes" ${"x".repeat(200)}` } });
    const other = await fetch(`${base}/things/8`);
    const unmatched = await fetch(`${base}/nowhere`);
    expect(none.status).toBe(404);
    for (const r of [none, bad, other, unmatched]) expect(r.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    expect(none.headers.get("x-request-id")).not.toBe(other.headers.get("x-request-id"));
  });
});

describe("RED metrics", () => {
  it("counts requests by route pattern and status, never by raw URL", async () => {
    const before = {
      ok: await countFor("/things/:id", 200),
      missing: await countFor("/things/:id", 404),
      unmatched: await countFor("unmatched", 404),
    };
    await app.inject({ url: "/things/1" });
    await app.inject({ url: "/things/2" });
    await app.inject({ url: "/things/0" });
    await app.inject({ url: "/nowhere/at/all" });
    expect(await countFor("/things/:id", 200)).toBe(before.ok + 2);
    expect(await countFor("/things/:id", 404)).toBe(before.missing + 1);
    expect(await countFor("unmatched", 404)).toBe(before.unmatched + 1);
    const text = await metrics.metrics();
    expect(text).toContain("# TYPE http_request_duration_seconds histogram");
    expect(text).not.toContain("/nowhere/at/all");
  });
});

describe("API contract", () => {
  it("documents the shared answers and headers on every route, and admin security", async () => {
    const doc = (await app.inject({ url: "/docs/json" })).json() as {
      paths: Record<
        string,
        Record<
          string,
          { operationId: string; tags: string[]; security?: unknown; responses: Record<string, { headers?: Record<string, unknown> }> }
        >
      >;
      components: { securitySchemes: Record<string, { type: string; scheme: string }> };
    };
    const get = doc.paths["/things/{id}"]?.get;
    expect(get?.operationId).toBe("getThingsById");
    expect(get?.tags).toEqual(["things"]);
    expect(Object.keys(get?.responses ?? {}).sort()).toEqual(["200", "400", "404", "500", "503"]);
    for (const r of Object.values(get?.responses ?? {})) expect(r.headers).toHaveProperty("x-request-id");
    expect(get?.responses["503"]?.headers).toHaveProperty("retry-after");
    expect(get?.security).toBeUndefined();

    const admin = doc.paths["/admin/things"]?.post;
    expect(admin?.security).toEqual([{ adminBearer: [] }]);
    expect(admin?.responses).toHaveProperty("401");
    expect(doc.components.securitySchemes.adminBearer).toMatchObject({ type: "http", scheme: "bearer" });
    expect((await app.inject({ method: "POST", url: "/admin/things", payload: {} })).statusCode).toBe(401);
  });

  it("serves an API reference page at /docs", async () => {
    const page = await app.inject({ url: "/docs" });
    const html = page.statusCode === 302 ? await app.inject({ url: String(page.headers.location) }) : page;
    expect(html.statusCode).toBe(200);
    expect(html.headers["content-type"]).toContain("text/html");
    expect(html.body).toContain("swagger");
  });
});
