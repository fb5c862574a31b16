/**
 * The benchmark's baseline: a bare fastify route answering the same product JSON,
 * with the same response schema, from a constant. Whatever the catalog costs on top
 * of this is the price of the cache. Usage: PORT=3199 PRODUCT_ID=1 tsx bench/bare-server.ts
 */
import { createDb, findProduct } from "@flashsale/db";
import Fastify from "fastify";
import { productSchema } from "../services/catalog/src/product-schema.ts";

const db = createDb({ url: process.env.DATABASE_URL ?? "postgresql://flashsale:flashsale@127.0.0.1:5432/flashsale" });
const product = await findProduct(db, Number(process.env.PRODUCT_ID ?? 1));
await db.$disconnect();
if (!product) throw new Error("product not found");

const app = Fastify();
app.get("/products/:id", { schema: { response: { 200: productSchema } } }, async (_req, reply) => {
  reply.header("x-cache", "BARE");
  return product;
});
app.get("/readyz", async () => ({ status: "ready" }));
await app.listen({ host: "127.0.0.1", port: Number(process.env.PORT ?? 3199) });
