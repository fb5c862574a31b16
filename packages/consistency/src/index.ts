export {
  type CacheCheckReport,
  checkCacheConsistency,
  type Inconsistency,
  repairInconsistencies,
  type ScanPosition,
} from "./cache-check.ts";
export { auditOrders, type OrderAuditReport, type WrongPriceOrder } from "./order-audit.ts";
