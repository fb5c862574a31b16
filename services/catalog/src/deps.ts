import type { RedisClient, VersionedCache } from "@flashsale/cache";
import type { Db, Product } from "@flashsale/db";

/** What the catalog's route plugins need, declared once (app.ts builds it; routes/ receive it). */
export interface CatalogDeps {
  db: Db;
  redis: RedisClient;
  cache: VersionedCache<Product>;
  adminToken: string;
}
