/** What other workspaces (the end-to-end tests, bench/) may use of the catalog; main.ts is the process. */
export { type BuildCatalogOptions, buildCatalogApp } from "./app.ts";
export { productIdParams, productSchema } from "./product-schema.ts";
