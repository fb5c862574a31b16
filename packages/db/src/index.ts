export * from "./carts.ts";
export * from "./checkout.ts";
export { createDb, type Db, type DbOptions } from "./client.ts";
export { DbClock, type DbNow, dbClock, probeDbClock } from "./db-clock.ts";
export { classifyDbError, type DbErrorClass, sqlState } from "./errors.ts";
export { type Migration, migrate, readMigrations } from "./migrate.ts";
export { type Product, type ProductRecord, productRecordSchema, productSchema } from "./product-schema.ts";
export * from "./products.ts";
export { DEFAULT_SEED, seed } from "./seed.ts";
