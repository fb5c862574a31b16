/**
 * OpenTelemetry across the pipeline: real catalog and invalidator processes export
 * OTLP/HTTP (JSON) to a receiver run by this test. An admin price write with a
 * known trace id must produce the catalog's spans (HTTP + Postgres) in that trace,
 * and the invalidator's eviction span must LINK to it — the link travels through
 * Postgres (products.change_traceparent), Debezium and Kafka. Requests get a route-level span
 * (@fastify/otel) that names the route pattern and carries the request's X-Request-Id.
 * Metrics are not pushed over OTLP: a Collector scrapes each service's /metrics
 * (infra/observability), so histograms stay histograms.
 */
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { insertProduct, pgPool, runId, type ServiceProcess, spawnService, waitFor } from "@flashsale/testkit";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

interface Span {
  service: string;
  traceId: string;
  spanId: string;
  name: string;
  kind: number;
  links: { traceId: string; spanId: string }[];
  attributes: Record<string, unknown>;
}

const spans: Span[] = [];
let receiver: Server;
let receiverPort = 0;
let services: ServiceProcess[] = [];
let pool: pg.Pool;

function collect(body: string): void {
  const doc = JSON.parse(body) as {
    resourceSpans?: {
      resource?: { attributes?: { key: string; value: { stringValue?: string } }[] };
      scopeSpans?: {
        spans?: (Omit<Span, "service" | "attributes" | "links"> & {
          links?: Span["links"];
          attributes?: { key: string; value: Record<string, unknown> }[];
        })[];
      }[];
    }[];
  };
  for (const rs of doc.resourceSpans ?? []) {
    const service = rs.resource?.attributes?.find((a) => a.key === "service.name")?.value.stringValue ?? "?";
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        const attributes = Object.fromEntries((s.attributes ?? []).map((a) => [a.key, Object.values(a.value)[0]]));
        spans.push({ service, traceId: s.traceId, spanId: s.spanId, name: s.name, kind: s.kind, links: s.links ?? [], attributes });
      }
    }
  }
}

beforeAll(async () => {
  pool = pgPool();
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      if (req.url === "/v1/traces") collect(body);
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  receiverPort = (receiver.address() as { port: number }).port;
  const otel = {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiverPort}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_BSP_SCHEDULE_DELAY: "100",
  };
  const base = 4100 + Math.floor(Math.random() * 400);
  services = await Promise.all([
    spawnService("catalog", base, { ...otel, CACHE_SCHEMA_VERSION: String(base), DB_QUERY_METRICS: "true" }),
    spawnService("invalidator", base + 500, {
      ...otel,
      CACHE_SCHEMA_VERSION: String(base),
      KAFKA_GROUP_ID: `tracing-${runId()}`,
      KAFKA_NEW_GROUP_START: "latest",
      CONSISTENCY_CHECK_INTERVAL_MS: "0",
    }),
  ]);
});

afterAll(async () => {
  await Promise.all(services.map((s) => s.stop()));
  await new Promise((r) => receiver?.close(r));
  await pool?.end();
});

describe("tracing", () => {
  it("links the invalidator's eviction to the trace of the admin write that caused it", async () => {
    const [catalog] = services as [ServiceProcess];
    const p = await insertProduct(pool, { sku: `TRACE-${runId()}`, listPriceCents: 100, stock: 1 });
    const traceId = randomBytes(16).toString("hex");
    let price = 200;
    // The consumer group may still be joining (it starts at the latest offset): retry the write until its eviction is traced.
    const eviction = await waitFor(
      async () => {
        const res = await fetch(`${catalog.url}/admin/products/${p.id}/price`, {
          method: "PUT",
          headers: {
            authorization: "Bearer dev-admin-token-change-me",
            "content-type": "application/json",
            traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01`,
          },
          body: JSON.stringify({ listPriceCents: price++ }),
        });
        expect(res.status).toBe(200);
        return waitFor(
          async () =>
            spans.find(
              (s) => s.service === "invalidator" && s.name === "invalidate products" && s.links.some((l) => l.traceId === traceId),
            ),
          { timeoutMs: 3_000, intervalMs: 50, what: "the linked eviction span" },
        ).catch(() => undefined);
      },
      { timeoutMs: 60_000, intervalMs: 100, what: "an eviction span linked to the admin write" },
    );
    // The batch's span names the traced products it evicted (OTLP JSON: an arrayValue of intValues).
    const ids = (eviction.attributes["flashsale.product_ids"] as { values: Record<string, unknown>[] }).values.map((v) =>
      Number(Object.values(v)[0]),
    );
    expect(ids).toContain(p.id);

    // The catalog exports its spans on its own schedule: the eviction's span may arrive first.
    const inTrace = await waitFor(
      async () => {
        const found = spans.filter((s) => s.traceId === traceId);
        const server = found.some((s) => s.service === "catalog" && s.kind === 2 /* SERVER */);
        const db = found.some((s) => s.service === "catalog" && s.attributes["db.system.name"] === "postgresql");
        return server && db ? found : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 50, what: "the admin write's catalog spans (server and Postgres) in its trace" },
    );
    console.log(`trace ${traceId}: ${inTrace.length} catalog spans; eviction span ${eviction.spanId} links to it`);
  });

  it("gives each request a route span named after its pattern, tagged with the request id it echoes", async () => {
    const [catalog] = services as [ServiceProcess];
    const p = await insertProduct(pool, { sku: `TRACE-${runId()}-rid`, listPriceCents: 100, stock: 1 });
    const requestId = `support-ticket-${runId()}`;
    const res = await fetch(`${catalog.url}/products/${p.id}`, { headers: { "x-request-id": requestId } });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe(requestId);
    const span = await waitFor(async () => spans.find((s) => s.service === "catalog" && s.attributes["http.request.id"] === requestId), {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: "the route span of the tagged request",
    });
    expect(span.attributes["http.route"]).toBe("/products/:id");
    // The route span belongs to the request's trace (the HTTP server span is its parent).
    expect(spans.some((s) => s.traceId === span.traceId && s.service === "catalog" && s.kind === 2 /* SERVER */)).toBe(true);
  });
});
