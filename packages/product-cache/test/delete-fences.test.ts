import { redisClient } from "@flashsale/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { invalidateProduct, PRODUCT_DELETE_FENCE_VERSION, PRODUCT_WRITE_PATH_DELETE_FENCE_VERSION, productKeys } from "../src/index.ts";

const redis = redisClient();
afterAll(async () => {
  await redis.quit();
});

describe("delete fences: the write path's cannot be lowered by a change still on its way", () => {
  it("an admin DELETE's fence survives an older CDC change; the delete's own event makes it replaceable by a re-insert", async () => {
    const schemaVersion = 900_000 + Math.floor(Math.random() * 99_999);
    const id = 42;
    const fence = async () => Number(await redis.get(productKeys(schemaVersion, id).fence));
    const change = (version: number, replaces = true) =>
      invalidateProduct(redis, {
        schemaVersion,
        id,
        version,
        fenceTtlMs: 60_000,
        ...(replaces ? { replacesDeleteFence: PRODUCT_DELETE_FENCE_VERSION } : {}),
      });
    try {
      await change(PRODUCT_WRITE_PATH_DELETE_FENCE_VERSION, false); // the catalog's DELETE, after its commit
      await change(7); // an update committed before the delete, its CDC event arriving late
      expect(await fence()).toBe(PRODUCT_WRITE_PATH_DELETE_FENCE_VERSION); // a fill read at version 7 stays refused
      await change(PRODUCT_DELETE_FENCE_VERSION, false); // the delete's own CDC event
      expect(await fence()).toBe(PRODUCT_DELETE_FENCE_VERSION);
      await change(12); // a re-insert (versions from one sequence: higher than anything before)
      expect(await fence()).toBe(12);
    } finally {
      const k = productKeys(schemaVersion, id);
      await redis.del(k.value, k.lease, k.fence);
    }
  });
});
