import type { RedisClient } from "@flashsale/cache";
import type { Db } from "@flashsale/db";
import type { ProductCache } from "@flashsale/product-cache";

/** What the catalog's route plugins need, declared once (app.ts builds it; routes/ receive it). */
export interface CatalogDeps {
  db: Db;
  redis: RedisClient;
  cache: ProductCache;
  adminToken: string;
}
