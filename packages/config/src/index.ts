import { isIP } from "node:net";
import { z } from "zod";

/**
 * Typed, validated environment, one schema per service. A bad value stops the
 * process at start-up with the variable's name and what was wrong with it.
 * Defaults match the native stack (infra/native) on loopback.
 */
const port = z.coerce.number().int().min(0).max(65535);
/** Node's timers hold at most 2^31-1 ms; a longer timeout would silently fire after 1 ms. */
const ms = z.coerce.number().int().min(1).max(2_147_483_647, "at most 2147483647 (ms; Node's timer limit)");
/** "a, b,c" -> ["a", "b", "c"]; empty entries dropped. */
const csvList = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((s) =>
      s
        .split(",")
        .map((item) => item.trim())
        .filter(Boolean),
    );

/**
 * The stored product format of this code (docs/architecture.md "Stored format": a change of it bumps
 * this). Tools that read the cache without a service's config (load tests, benchmarks, the
 * consistency CLI) default to it too.
 */
export const DEFAULT_CACHE_SCHEMA_VERSION = 2;

const common = {
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  HOST: z.string().default("127.0.0.1"),
  /** The services' role (infra/postgres/init.sql): rows only; migrations run as the owner. */
  DATABASE_URL: z.string().url().default("postgresql://flashsale_app:flashsale_app@127.0.0.1:5432/flashsale"),
  DB_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
  DB_STATEMENT_TIMEOUT_MS: ms.default(5_000),
  REDIS_URL: z.string().url().default("redis://127.0.0.1:6379"),
  REDIS_COMMAND_TIMEOUT_MS: ms.default(250),
  /** host:port,host:port of a Redis Cluster; when set, REDIS_URL is not used. */
  REDIS_CLUSTER_NODES: csvList(""),
  CACHE_SCHEMA_VERSION: z.coerce.number().int().min(1).default(DEFAULT_CACHE_SCHEMA_VERSION),
  /** Bounded request lifetimes (packages/http service-base HttpLimits; README "Request lifetimes"). */
  HTTP_HEADERS_TIMEOUT_MS: ms.default(10_000),
  HTTP_REQUEST_TIMEOUT_MS: ms.default(30_000),
  HTTP_IDLE_TIMEOUT_MS: ms.default(60_000),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: ms.default(10_000),
  /** 0 = no limit (Node's default): past the limit Node answers 503 to a client that ignores Connection: close. */
  HTTP_MAX_REQUESTS_PER_SOCKET: z.coerce.number().int().min(0).default(0),
  HTTP_MAX_CONNECTIONS: z.coerce.number().int().min(1).default(10_000),
  /**
   * Addresses/CIDRs (or loopback, uniquelocal, …) of the proxies in front whose X-Forwarded-For
   * is believed for the client IP (the anonymous rate-limit key); empty = none.
   */
  TRUSTED_PROXIES: csvList("").refine((list) => list.every(isProxyAddress), {
    message: "each entry must be an IP address, a CIDR (10.0.0.0/8) or loopback / linklocal / uniquelocal",
  }),
  /** http_request_db_queries per route; costs ~20 % of peak throughput on the hot path, hence opt-in. */
  DB_QUERY_METRICS: z
    .enum(["true", "false"])
    .default("false")
    .transform((v) => v === "true"),
};

/** What fastify's trustProxy (proxy-addr) accepts: an address, a CIDR, or a named range. */
function isProxyAddress(entry: string): boolean {
  if (["loopback", "linklocal", "uniquelocal"].includes(entry)) return true;
  const [address, prefix, ...rest] = entry.split("/");
  const family = isIP(address ?? "");
  if (family === 0 || rest.length > 0) return false;
  return prefix === undefined || (/^[0-9]{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128));
}

/** The headers arrive before the whole request does: a longer headers timeout could never apply. */
function timeoutsConsistent(c: { HTTP_HEADERS_TIMEOUT_MS: number; HTTP_REQUEST_TIMEOUT_MS: number }, ctx: z.RefinementCtx): void {
  if (c.HTTP_HEADERS_TIMEOUT_MS > c.HTTP_REQUEST_TIMEOUT_MS) {
    ctx.addIssue({ code: "custom", path: ["HTTP_HEADERS_TIMEOUT_MS"], message: "must not exceed HTTP_REQUEST_TIMEOUT_MS" });
  }
}

/**
 * The admin token every clone knows. Accepted only in development mode (FLASHSALE_DEV=1), so a
 * deployment that forgot to set ADMIN_TOKEN refuses to start instead of inheriting it.
 */
export const DEV_ADMIN_TOKEN = "dev-admin-token-change-me";
const devMode = z
  .enum(["0", "1"], { message: "FLASHSALE_DEV must be 0 or 1" })
  .default("0")
  .transform((v) => v === "1");

/**
 * Must outlive the slowest fill it protects against: the catalog drops fills whose DB read
 * took over 10 s (maxFillAgeMs) and leases last 2 s, so anything under 15 s is refused.
 * One value for every evicting path (the invalidator, the catalog's admin writes).
 */
const fenceTtlSeconds = z.coerce
  .number()
  .int()
  .min(15, "FENCE_TTL_SECONDS must be at least 15 (fills may take up to 10 s + lease)")
  .default(60);

/** One TTL policy for every filler of the shared product keys (catalog and checkout). */
const cacheTtlSeconds = z.coerce.number().int().min(1).default(86_400);

export const catalogSchema = z
  .object({
    ...common,
    PORT: port.default(3001),
    ADMIN_TOKEN: z.string().min(16, "ADMIN_TOKEN must be at least 16 characters").default(DEV_ADMIN_TOKEN),
    /** 1 = a local development stack (scripts/up, scripts/services.sh, the tests): allows DEV_ADMIN_TOKEN. */
    FLASHSALE_DEV: devMode,
    CACHE_TTL_SECONDS: cacheTtlSeconds,
    CACHE_LEASE_MS: ms.default(2_000),
    CACHE_L1_ENABLED: z
      .enum(["true", "false"])
      .default("true")
      .transform((v) => v === "true"),
    CACHE_L1_TTL_MS: ms.default(5_000),
    CACHE_L1_MAX_ENTRIES: z.coerce.number().int().min(1).default(10_000),
    /** "plain" turns the stampede protection off; only for the stampede benchmark's baseline. */
    CACHE_MODE: z.enum(["protocol", "plain"]).default("protocol"),
    /** Concurrent Postgres reads allowed outside the lease protocol (Redis down), and their queue. */
    DB_FALLBACK_CONCURRENCY: z.coerce.number().int().min(1).default(8),
    DB_FALLBACK_QUEUE: z.coerce.number().int().min(0).default(256),
    /**
     * Δ of the staleness bound (docs/architecture.md#cache-protocol): cached values are served
     * unchecked only while the invalidation watermark is younger than this; 0 = always trust.
     */
    CACHE_STALENESS_BOUND_MS: z.coerce.number().int().min(0).max(2_000, "at most 2000 (ms; issue: Δ <= 2 s)").default(2_000),
    /** How often the watermark is read (with this as its timeout too). */
    CACHE_WATERMARK_POLL_MS: z.coerce.number().int().min(10).max(1_000).default(150),
    /** A watermark never published (no producer running): "old" = revalidate every hit (safe), "fresh" = trust. */
    CACHE_UNPUBLISHED_WATERMARK: z.enum(["old", "fresh"]).default("old"),
    /** How long "no such product" is cached (negative caching); 0 = off. */
    CACHE_NEGATIVE_TTL_MS: z.coerce.number().int().min(0).max(60_000).default(5_000),
    /** The L1 channel's end-to-end canary: written every CACHE_L1_CANARY_MS, heard within the deadline or L1 off. */
    CACHE_L1_CANARY_MS: ms.default(250),
    CACHE_L1_CANARY_DEADLINE_MS: ms.default(1_000),
    /** How often this catalog sweeps fences whose time is up (they carry no Redis TTL); 0 = never. */
    CACHE_FENCE_SWEEP_MS: z.coerce.number().int().min(0).default(10_000),
    /** The fences of the admin path's own evictions (read-your-writes) live as long as the invalidator's. */
    FENCE_TTL_SECONDS: fenceTtlSeconds,
    /** Load shedding: 503 OVERLOADED while the event loop's mean delay exceeds this (ms); 0 = off. */
    CATALOG_SHED_EVENT_LOOP_DELAY_MS: z.coerce.number().int().min(0).default(100),
    /** Load shedding: 503 OVERLOADED while the V8 heap in use exceeds this (MiB); 0 = off. */
    CATALOG_SHED_HEAP_MB: z.coerce.number().int().min(0).default(1_024),
    /** Load shedding: 503 OVERLOADED for an API request arriving while this many are in progress; 0 = off. */
    CATALOG_SHED_MAX_IN_FLIGHT: z.coerce.number().int().min(0).default(256),
    /** Warm-up after a cold start: the hottest this many products by recent demand, first... */
    CATALOG_WARMUP_TOP: z.coerce.number().int().min(0).default(2_000),
    /** ...at most this many Postgres reads per second (0 = no warm-up; demand is tracked anyway). */
    CATALOG_WARMUP_RATE: z.coerce.number().int().min(0).default(500),
  })
  .refine((c) => c.FLASHSALE_DEV || c.ADMIN_TOKEN !== DEV_ADMIN_TOKEN, {
    path: ["ADMIN_TOKEN"],
    message: `ADMIN_TOKEN is unset or the public development default; set a secret ADMIN_TOKEN (or FLASHSALE_DEV=1 on a local development stack)`,
  })
  .superRefine(timeoutsConsistent);

export const checkoutSchema = z
  .object({
    ...common,
    PORT: port.default(3002),
    /** The product keys' TTL for this process's fills (display prices); same variable and default as the catalog's. */
    CACHE_TTL_SECONDS: cacheTtlSeconds,
    /**
     * The Redis stock gate in front of checkout. Off by default since group commit (issue 11):
     * the batched statement refuses sold-out buyers almost for free, while the gate costs every
     * buyer a cart read and two Redis scripts (README "Benchmarks": slower in every checkout-rush scenario).
     */
    STOCK_GATE_ENABLED: z
      .enum(["true", "false"])
      .default("false")
      .transform((v) => v === "true"),
    /** Checkouts per user (x-user-id header, else client IP) per window. */
    CHECKOUT_RATE_LIMIT_MAX: z.coerce.number().int().min(1).default(10),
    CHECKOUT_RATE_LIMIT_WINDOW_MS: ms.default(10_000),
    /** Checkouts waiting for their batch (group commit lanes, packages/db checkout.ts) beyond those running; more -> 503. */
    CHECKOUT_QUEUE: z.coerce.number().int().min(0).default(500),
  })
  .superRefine(timeoutsConsistent);

export const invalidatorSchema = z
  .object({
    ...common,
    PORT: port.default(3003),
    KAFKA_BROKERS: csvList("127.0.0.1:9092"),
    KAFKA_GROUP_ID: z.string().default("flashsale-invalidator"),
    KAFKA_TOPIC_PREFIX: z.string().default("flashsale"),
    /** Where a consumer group with no committed offsets starts (earliest: miss nothing on a first deployment). */
    KAFKA_NEW_GROUP_START: z.enum(["earliest", "latest"]).default("earliest"),
    FENCE_TTL_SECONDS: fenceTtlSeconds,
    /** Periodic consistency check of up to CONSISTENCY_CHECK_MAX_KEYS cached products; 0 disables it. */
    CONSISTENCY_CHECK_INTERVAL_MS: z.coerce.number().int().min(0).default(30_000),
    CONSISTENCY_CHECK_MAX_KEYS: z.coerce.number().int().min(1).default(1_000),
  })
  .superRefine(timeoutsConsistent);

/** The HttpLimits of packages/http from a loaded config. */
export function httpLimits(c: {
  HTTP_HEADERS_TIMEOUT_MS: number;
  HTTP_REQUEST_TIMEOUT_MS: number;
  HTTP_IDLE_TIMEOUT_MS: number;
  HTTP_KEEP_ALIVE_TIMEOUT_MS: number;
  HTTP_MAX_REQUESTS_PER_SOCKET: number;
  HTTP_MAX_CONNECTIONS: number;
  TRUSTED_PROXIES: string[];
}) {
  return {
    headersTimeoutMs: c.HTTP_HEADERS_TIMEOUT_MS,
    requestTimeoutMs: c.HTTP_REQUEST_TIMEOUT_MS,
    idleTimeoutMs: c.HTTP_IDLE_TIMEOUT_MS,
    keepAliveTimeoutMs: c.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    maxRequestsPerSocket: c.HTTP_MAX_REQUESTS_PER_SOCKET,
    maxConnections: c.HTTP_MAX_CONNECTIONS,
    trustedProxies: c.TRUSTED_PROXIES,
  };
}

export type CatalogConfig = z.infer<typeof catalogSchema>;
export type CheckoutConfig = z.infer<typeof checkoutSchema>;
export type InvalidatorConfig = z.infer<typeof invalidatorSchema>;

export class ConfigError extends Error {}

/**
 * Parses the environment. A variable set to the empty string (`PORT=`) counts as unset: its
 * default applies (coercing "" gave 0 — a random port — before).
 */
export function loadConfig<S extends z.ZodTypeAny>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const parsed = schema.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== "")));
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  return parsed.data;
}
