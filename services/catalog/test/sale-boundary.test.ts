import { createRedisClient, publishWatermark, redisNowMs } from "@flashsale/cache";
import { PrivateRedis, pgPool, runId, type ServiceProcess, spawnService } from "@flashsale/testkit";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "./fixture.ts";

/**
 * Sale boundaries are DB-clock facts (docs/architecture.md#price-schedule-and-the-db-clock). Two
 * catalog processes whose wall clocks run 5 s BEHIND the real one (issue 12 item 6), one serving from
 * L1 and one from Redis (L1 off), are read across a sale's start and its end. Every answer whose
 * request lies wholly on one side of a boundary (bracketed by the DB's clock_timestamp()) must show
 * that side's price and validUntil, and no read after the first fill may miss: the boundary expires
 * nothing.
 */
const SKEW_MS = -5_000;
const schema = 8_000 + Math.floor(Math.random() * 1_000);
const skewHook = new URL("./skew-clock.mjs", import.meta.url).pathname;
let pool: pg.Pool;
let redisServer: PrivateRedis;
let publisher: ReturnType<typeof createRedisClient>;
let watermark: NodeJS.Timeout;
let l1: ServiceProcess;
let redisTier: ServiceProcess;

beforeAll(async () => {
  pool = pgPool();
  // A private Redis with a watermark the test publishes (it makes no writes but its own insert):
  // the staleness bound trusts the cache, so every answer comes from the tiers under test.
  redisServer = new PrivateRedis(await freePort());
  await redisServer.start();
  publisher = createRedisClient({ url: redisServer.url, commandTimeoutMs: 1_000, failFast: false });
  const publish = async () => void (await publishWatermark(publisher, await redisNowMs(publisher)));
  await publish();
  watermark = setInterval(() => void publish().catch(() => {}), 100);
  const env = {
    REDIS_URL: redisServer.url,
    CACHE_SCHEMA_VERSION: String(schema),
    FAKE_CLOCK_SKEW_MS: String(SKEW_MS),
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${skewHook}`.trim(),
  };
  [l1, redisTier] = await Promise.all([
    spawnService("catalog", await freePort(), env),
    spawnService("catalog", await freePort(), { ...env, CACHE_L1_ENABLED: "false" }),
  ]);
});
afterAll(async () => {
  clearInterval(watermark);
  await Promise.all([l1?.stop(), redisTier?.stop()]);
  publisher?.disconnect();
  await redisServer?.kill();
  await pool.end();
});

async function dbNow(): Promise<number> {
  const { rows } = await pool.query<{ t: Date }>("SELECT clock_timestamp() AS t");
  return (rows[0] as { t: Date }).t.getTime();
}

describe("a sale's start and end at the DB clock, app clock 5 s behind", () => {
  it("serves each side of both boundaries from L1 and from Redis, without a miss", async () => {
    const { rows } = await pool.query<{ id: string; starts: Date; ends: Date }>(
      `WITH p AS (
         INSERT INTO products (sku, name, list_price_cents, sale_price_cents, sale_starts_at, sale_ends_at)
         VALUES ($1, $1, 1000, 600, now() + interval '2 seconds', now() + interval '4 seconds')
         RETURNING id, sale_starts_at AS starts, sale_ends_at AS ends
       ), i AS (INSERT INTO inventory (product_id, available) SELECT id, 1 FROM p)
       SELECT * FROM p`,
      [`BOUNDARY-${runId()}`],
    );
    const { id, starts, ends } = rows[0] as { id: string; starts: Date; ends: Date };
    const s = starts.getTime();
    const e = ends.getTime();
    const expected = (t: number) =>
      t < s
        ? { priceCents: 1000, validUntil: starts.toISOString() }
        : t < e
          ? { priceCents: 600, validUntil: ends.toISOString() }
          : { priceCents: 1000, validUntil: null };

    // The first read of each fills (L1 process) or finds that fill (Redis process).
    for (const svc of [l1, redisTier]) expect((await fetch(`${svc.url}/products/${id}`)).status).toBe(200);

    const seen = { l1: [0, 0, 0], redis: [0, 0, 0] };
    const wrong: string[] = [];
    const sources = new Set<string>();
    while ((await dbNow()) < e + 700) {
      for (const [name, svc] of [
        ["l1", l1],
        ["redis", redisTier],
      ] as const) {
        const t0 = await dbNow();
        const res = await fetch(`${svc.url}/products/${id}`);
        const t1 = await dbNow();
        const body = (await res.json()) as { priceCents: number; validUntil: string | null };
        sources.add(`${name}:${res.headers.get("x-cache")}`);
        const before = expected(t0);
        const after = expected(t1);
        // A request spanning a boundary may show either side; otherwise exactly the side it lies on.
        if (before.priceCents !== after.priceCents || before.validUntil !== after.validUntil) continue;
        const phase = t0 < s ? 0 : t0 < e ? 1 : 2;
        seen[name][phase] = (seen[name][phase] ?? 0) + 1;
        if (body.priceCents !== before.priceCents || body.validUntil !== before.validUntil) {
          wrong.push(
            `${name} at DB ${new Date(t0).toISOString()}: ${body.priceCents}/${body.validUntil}, expected ${before.priceCents}/${before.validUntil}`,
          );
        }
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(wrong.slice(0, 5)).toEqual([]);
    // Both tiers were read on every side of both boundaries...
    for (const counts of Object.values(seen)) for (const n of counts) expect(n).toBeGreaterThan(5);
    // ...and never missed: a boundary is not an expiry (the L1 process re-reads Redis when its
    // short L1 TTL ends, which is a Redis HIT, not a miss).
    expect(sources).toContain("l1:HIT-L1");
    expect([...sources].filter((x) => !["l1:HIT-L1", "l1:HIT", "redis:HIT"].includes(x))).toEqual([]);
  });
});
