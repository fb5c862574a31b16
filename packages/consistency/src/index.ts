export { type CacheCheckReport, checkCacheConsistency, type Inconsistency, type ScanPosition } from "./cache-check.ts";
export { auditOrders, type OrderAuditReport, type WrongPriceOrder } from "./order-audit.ts";
