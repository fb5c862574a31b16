import { redisClient } from "@flashsale/testkit";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StockGate } from "../src/stock-gate.ts";

let redis: Redis;
let nextProduct = 900_000_000 + Math.floor(Math.random() * 1_000_000);
beforeAll(() => {
  redis = redisClient();
});
afterAll(async () => {
  await redis.quit();
});

const avail = async (id: number) => Number(await redis.get(StockGate.keys(id).avail));

describe("StockGate", () => {
  it("admits at most the synced stock minus live holds, and learns unknown products from Postgres", async () => {
    const id = nextProduct++;
    const gate = new StockGate(redis);
    let dbReads = 0;
    const fromDb = async () => {
      dbReads++;
      return 4;
    };
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => gate.reserve(id, 1, `t${i}`, fromDb)));
    expect(results.filter((r) => r === "reserved")).toHaveLength(4);
    expect(dbReads).toBeGreaterThanOrEqual(1);
    await gate.release(id, 1, "t0"); // an aborted checkout gives its unit back
    expect(await gate.reserve(id, 1, "late", async () => 4)).toBe("reserved");
  });

  it("counts a commit once whether the CDC sync or the checkout's release arrives first", async () => {
    for (const syncFirst of [true, false]) {
      const id = nextProduct++;
      const gate = new StockGate(redis);
      expect(await gate.reserve(id, 1, "buyer", async () => 5)).toBe("reserved");
      // The order committed; Postgres now has 4. Both the inventory event and the release say so.
      if (syncFirst) {
        await gate.sync(id, 4);
        await gate.release(id, 1, "buyer", 4);
      } else {
        await gate.release(id, 1, "buyer", 4);
        await gate.sync(id, 4);
      }
      expect(await avail(id)).toBe(4);
    }
  });

  it("expires the holds of a checkout that never reported back", async () => {
    let now = 1_000_000;
    const id = nextProduct++;
    const gate = new StockGate(redis, { holdTtlMs: 1_000, now: () => now });
    expect(await gate.reserve(id, 1, "crashed", async () => 1)).toBe("reserved");
    expect(await gate.reserve(id, 1, "next", async () => 1)).toBe("sold_out");
    now += 1_001;
    expect(await gate.reserve(id, 1, "next", async () => 1)).toBe("reserved");
  });
});
