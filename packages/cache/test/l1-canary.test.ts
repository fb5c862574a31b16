import { connect, createServer, type Server, type Socket } from "node:net";
import { PrivateRedis, waitFor } from "@flashsale/testkit";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CacheEvent } from "../src/cache.ts";
import { invalidateEntity } from "../src/invalidate.ts";
import { keyPrefix } from "../src/keys.ts";
import { type CanaryOptions, L1Invalidations } from "../src/l1-invalidations.ts";
import { createRedisClient, type RedisClient } from "../src/redis-client.ts";
import { testCache } from "./cache-factory.ts";

// Issue 12 item 5 (docs/architecture.md#l1-coherence): the tracking connection goes deaf without a
// FIN or RST (NAT expiry, a VIP failover). A private redis-server, and a TCP proxy of the test's own
// in front of it for the tracking connection only, which can silently drop Redis -> client bytes.
const SCHEMA = 5;
const server = new PrivateRedis(20_900 + Math.floor(Math.random() * 400));
let proxy: Server;
let proxyPort = 0;
let dropping = false;
const sockets = new Set<Socket>();
let admin: Redis;
let direct: RedisClient;

beforeAll(async () => {
  await server.start();
  proxy = createServer((client) => {
    const upstream = connect(server.port, "127.0.0.1");
    sockets.add(client).add(upstream);
    client.on("data", (d) => upstream.write(d));
    upstream.on("data", (d) => {
      if (!dropping) client.write(d); // dropped: no error, no close, the bytes just never arrive
    });
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) s.on("error", () => {}).on("close", closeBoth);
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  proxyPort = (proxy.address() as { port: number }).port;
  admin = new Redis(server.url);
  direct = createRedisClient({ url: server.url, commandTimeoutMs: 250, failFast: true });
  direct.on("error", () => {});
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => proxy.close(r));
  admin.disconnect();
  direct.disconnect();
  await server.kill();
});

async function deafChannel(canary: CanaryOptions | false) {
  dropping = false;
  const viaProxy = createRedisClient({ url: `redis://127.0.0.1:${proxyPort}`, commandTimeoutMs: 250, failFast: true });
  viaProxy.on("error", () => {});
  const invalidations = new L1Invalidations(viaProxy, keyPrefix(SCHEMA), () => {}, { canary });
  await invalidations.start();
  const events: CacheEvent[] = [];
  const cache = testCache(direct, SCHEMA, { jitter: 0, events, l1: { invalidations, ttlMs: 30_000 } });
  await waitFor(async () => (invalidations.isUp ? true : undefined), { timeoutMs: 3_000, what: "L1 channel up" });
  return { invalidations, cache, viaProxy, events };
}

/** Warms L1 with version 1, makes the channel deaf, changes the row; how long version 1 is still served. */
async function staleFor(canary: CanaryOptions | false, id: number): Promise<{ ms: number; recovered: boolean }> {
  const { invalidations, cache, viaProxy } = await deafChannel(canary);
  let version = 1;
  const load = async () => ({ id, version });
  try {
    await cache.get(id, load);
    // The fill's own tracking message evicts what the fill put into L1; the next Redis hit stays.
    await new Promise((r) => setTimeout(r, 200));
    await cache.get(id, load);
    await new Promise((r) => setTimeout(r, 200));
    expect((await cache.get(id, load)).source).toBe("HIT-L1");
    dropping = true;
    version = 2;
    await invalidateEntity(admin, { schemaVersion: SCHEMA, entity: "product", id, version: 2, fenceTtlMs: 60_000 });
    const t0 = performance.now();
    while ((await cache.get(id, load)).value?.version === 1 && performance.now() - t0 < 4_000) await new Promise((r) => setTimeout(r, 10));
    const ms = performance.now() - t0;
    dropping = false;
    // The channel comes back by itself once bytes flow again (reconnect, tracking, a canary heard).
    const recovered = await waitFor(async () => (invalidations.isUp ? true : undefined), { timeoutMs: 10_000, what: "L1 back" })
      .then(() => true)
      .catch(() => false);
    return { ms, recovered };
  } finally {
    dropping = false;
    await invalidations.stop();
    viaProxy.disconnect();
  }
}

describe("the L1 canary", () => {
  it("switches L1 off within its deadline when invalidations silently stop arriving, and back on after", async () => {
    const { ms, recovered } = await staleFor({ everyMs: 100, deadlineMs: 500 }, 1);
    expect(ms).toBeLessThanOrEqual(500 + 100 + 500); // deadline + one tick + scheduling slack on shared cores
    expect(recovered).toBe(true);
  });

  it("without it, a deaf channel keeps serving the old value from L1 (the hole it closes)", async () => {
    const { ms } = await staleFor(false, 2);
    expect(ms).toBeGreaterThanOrEqual(4_000);
  });
});
