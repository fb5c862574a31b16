/**
 * The same product route built the way a Node team would build it without this project (issue 13
 * item 6), for bench/peers.ts:
 *   PEER=bentocache   fastify + bentocache: memory L1 + Redis L2 + its Redis bus (L1s of the other
 *                     processes told of deletes); the app deletes on its own writes.
 *   PEER=cache-aside  fastify + plain cache-aside with ioredis: GET, else read Postgres and SET EX;
 *                     the app deletes on its own writes.
 * Both: GET /products/:id (the Product JSON at its effective price, read with packages/db
 * findProduct, response schema = the one Product schema), PUT /products/:id/price { listPriceCents }
 * (UPDATE, then delete the key), GET /reads (how many Postgres product reads this process made).
 *   PEER=bentocache PORT=3299 REDIS_URL=redis://... tsx bench/peer-server.ts
 */
import { createDb, findProduct, type Product, productSchema, setListPrice } from "@flashsale/db";
import { TEST_ENV } from "@flashsale/testkit";
import { BentoCache, bentostore } from "bentocache";
import { memoryDriver } from "bentocache/drivers/memory";
import { redisBusDriver, redisDriver } from "bentocache/drivers/redis";
import Fastify from "fastify";
import { Redis } from "ioredis";

const peer = process.env.PEER ?? "bentocache";
const redisUrl = process.env.REDIS_URL ?? TEST_ENV.redisUrl;
const TTL_S = 3600;
const db = createDb({ url: TEST_ENV.databaseUrl, poolMax: 10 });
let reads = 0;
const load = (id: number) => {
  reads++;
  return findProduct(db, id);
};

interface ProductStore {
  get(id: number): Promise<Product | null>;
  evict(id: number): Promise<void>;
}

function bento(): ProductStore {
  const cache = new BentoCache({
    default: "multitier",
    stores: {
      multitier: bentostore()
        .useL1Layer(memoryDriver({ maxSize: "50mb" }))
        .useL2Layer(redisDriver({ connection: new Redis(redisUrl) }))
        .useBus(redisBusDriver({ connection: new Redis(redisUrl) })),
    },
  });
  return {
    get: (id) => cache.getOrSet({ key: `product:${id}`, ttl: TTL_S * 1000, factory: () => load(id) }),
    evict: async (id) => void (await cache.delete({ key: `product:${id}` })),
  };
}

function cacheAside(): ProductStore {
  const redis = new Redis(redisUrl);
  return {
    async get(id) {
      const hit = await redis.get(`peer:product:${id}`);
      if (hit !== null) return JSON.parse(hit) as Product;
      const p = await load(id);
      if (p) await redis.set(`peer:product:${id}`, JSON.stringify(p), "EX", TTL_S);
      return p;
    },
    evict: async (id) => void (await redis.del(`peer:product:${id}`)),
  };
}

const store = peer === "cache-aside" ? cacheAside() : bento();
const app = Fastify();
app.get<{ Params: { id: string } }>("/products/:id", { schema: { response: { 200: productSchema } } }, async (req, reply) => {
  const p = await store.get(Number(req.params.id));
  if (!p) return reply.status(404).send({ error: "NOT_FOUND" });
  return p;
});
app.put<{ Params: { id: string }; Body: { listPriceCents: number } }>("/products/:id/price", async (req, reply) => {
  const id = Number(req.params.id);
  const p = await setListPrice(db, id, req.body.listPriceCents);
  if (!p) return reply.status(404).send({ error: "NOT_FOUND" });
  await store.evict(id);
  return p;
});
app.get("/reads", async () => ({ reads }));
app.get("/readyz", async () => ({ status: "ready" }));
await app.listen({ host: "127.0.0.1", port: Number(process.env.PORT ?? 3299) });
