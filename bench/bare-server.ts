/**
 * The benchmark's baselines: a route answering the same product JSON, with the same
 * response schema, from a constant (no cache, no DB).
 *   BASE=bare     plain Fastify(), no logger: "bare fastify"
 *   BASE=service  our service skeleton (createServiceBase: pino logger, error handling,
 *                 swagger, metrics) + the same params schema: isolates the cache's own cost
 * Usage: PORT=3199 PRODUCT_ID=1 BASE=bare tsx bench/bare-server.ts
 */
import { productIdParams, productSchema } from "@flashsale/catalog";
import { createDb, findProduct } from "@flashsale/db";
import { createServiceBase } from "@flashsale/http";
import { createLogger, createMetricsRegistry } from "@flashsale/telemetry";
import { TEST_ENV } from "@flashsale/testkit";
import Fastify from "fastify";

// The benchmark runs on the test stack (test/stack.env), where cache-tiers.ts inserted the product.
const db = createDb({ url: TEST_ENV.databaseUrl });
const product = await findProduct(db, Number(process.env.PRODUCT_ID ?? 1));
await db.$disconnect();
if (!product) throw new Error("product not found");

const withService = process.env.BASE === "service";
const app = withService
  ? await createServiceBase({
      title: "baseline",
      logger: createLogger("baseline", "warn"),
      metrics: createMetricsRegistry("baseline"),
      readiness: [],
    })
  : Fastify();
app.get(
  "/products/:id",
  { schema: { ...(withService ? { params: productIdParams } : {}), response: { 200: productSchema } } },
  async (_req, reply) => {
    reply.header("x-cache", "BASELINE");
    return product;
  },
);
if (!withService) app.get("/readyz", async () => ({ status: "ready" }));
await app.listen({ host: "127.0.0.1", port: Number(process.env.PORT ?? 3199) });
