import AjvCompiler from "@fastify/ajv-compiler";
import Fastify, { type FastifyInstance, type FastifyServerOptions, LogController } from "fastify";
import type { Registry } from "prom-client";
import { clientErrorHandler, countClientAborts, limitPipelining, requestTimeoutCounter, routerErrorHandler } from "./client-errors.ts";
import { installApiContract } from "./contract.ts";
import { trackDbQueriesPerRequest } from "./db-queries.ts";
import { installErrorHandling } from "./errors.ts";
import { adoptRequestId, installRequestObservability } from "./observability.ts";

export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
  /** false: reported, but the service still answers without it (degraded, e.g. cache bypass). */
  required?: boolean;
}

/**
 * Ready while at least one of the named checks passes (e.g. the catalog answers from the cache
 * or from Postgres). Judged from those checks' results in the same probe: each dependency is
 * asked once per /readyz, however many rules name it.
 */
export interface ReadinessAnyOf {
  name: string;
  anyOf: string[];
  /** Reported when none of them passes. */
  failure: string;
}

function isAnyOf(r: ReadinessCheck | ReadinessAnyOf): r is ReadinessAnyOf {
  return "anyOf" in r;
}

export interface ServiceBaseOptions {
  title: string;
  /** The OpenAPI document's description (what the service is for). */
  description?: string;
  logger: FastifyServerOptions["loggerInstance"];
  metrics: Registry;
  /** /readyz: every required check passes and every anyOf rule has one passing check. */
  readiness: Array<ReadinessCheck | ReadinessAnyOf>;
  bodyLimit?: number;
  /**
   * Count database queries per request (`http_request_db_queries`). Off by default: the
   * per-request AsyncLocalStorage it needs costs ~20 % of a 40k req/s hot path (bench/).
   */
  trackDbQueries?: boolean;
  /** How long a client may take over each part of an exchange (defaults: DEFAULT_HTTP_LIMITS). */
  limits?: Partial<HttpLimits>;
}

/**
 * Bounded request lifetimes. Fastify 5 sets Node's requestTimeout and the socket timeout
 * to 0 (off), so without these a client trickling a body holds a socket (and a file
 * descriptor) forever. The values come from packages/config (HTTP_* variables).
 */
export interface HttpLimits {
  /** Request line + headers must arrive within this (Node's headersTimeout; answered 408). */
  headersTimeoutMs: number;
  /** The whole request, body included, must arrive within this (Node's requestTimeout; 408). */
  requestTimeoutMs: number;
  /** A socket with no traffic in either direction for this long is destroyed (fastify connectionTimeout). */
  idleTimeoutMs: number;
  /** An idle keep-alive connection is closed after this; a proxy in front must use a shorter idle timeout. */
  keepAliveTimeoutMs: number;
  /**
   * Requests served on one keep-alive connection before it is closed (0 = no limit). A limit
   * helps a load balancer rebalance long-lived connections, but Node answers 503 to requests a
   * client sends past it on the same socket after `Connection: close` (autocannon does), so it is
   * off unless configured.
   */
  maxRequestsPerSocket: number;
  /** Open connections per process; beyond it new sockets are closed at once (file descriptors stay for Redis/Postgres). */
  maxConnections: number;
  /**
   * Pipelined requests a connection may have waiting for their answers; beyond it the connection
   * is destroyed (client-errors.ts limitPipelining: unbounded pipelining buffered every answer). 0 = no limit.
   */
  maxPipelinedRequests: number;
  /**
   * Proxies whose X-Forwarded-For is believed for `request.ip` (fastify trustProxy, proxy-addr
   * syntax: addresses, CIDRs, loopback, uniquelocal). Empty: request.ip is the peer address.
   */
  trustedProxies: string[];
}

const DEFAULT_HTTP_LIMITS: HttpLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  keepAliveTimeoutMs: 10_000,
  maxRequestsPerSocket: 0,
  maxConnections: 10_000,
  maxPipelinedRequests: 32,
  trustedProxies: [],
};

/**
 * Bodies are validated without type coercion (`"7"`, `true` or `[3]` are not a quantity);
 * path, query and headers are strings on the wire, so they may coerce. Unknown properties
 * are errors, not silently removed (fastify's default removeAdditional), so the error
 * handler can name them (UNKNOWN_PROPERTY).
 */
function strictBodyValidators(): { buildValidator: AjvCompiler.BuildCompilerFromPool } {
  const factory = AjvCompiler();
  return {
    buildValidator(externalSchemas, options) {
      const plugins = options?.plugins ?? [];
      const coercing = factory(externalSchemas, { plugins, customOptions: { removeAdditional: false } });
      const strict = factory(externalSchemas, { plugins, customOptions: { removeAdditional: false, coerceTypes: false } });
      return (route) => (route.httpPart === "body" ? strict(route) : coercing(route));
    },
  };
}

const READINESS_TIMEOUT_MS = 1_000;

/**
 * The part every flashsale service shares: JSON errors with codes, request ids and RED
 * metrics, OpenAPI at /docs/json with its reference page at /docs, /healthz (process up), /readyz (dependencies reachable, each
 * check bounded by a timeout) and /metrics (Prometheus text).
 */
export async function createServiceBase(opts: ServiceBaseOptions): Promise<FastifyInstance> {
  const limits = { ...DEFAULT_HTTP_LIMITS, ...opts.limits };
  const timeouts = requestTimeoutCounter(opts.metrics);
  const app = Fastify({
    loggerInstance: opts.logger,
    bodyLimit: opts.bodyLimit ?? 64 * 1024,
    connectionTimeout: limits.idleTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    maxRequestsPerSocket: limits.maxRequestsPerSocket,
    http: {
      headersTimeout: limits.headersTimeoutMs,
      // Node enforces headers/request timeouts on this sweep (default 30 s): make the
      // bound hold to within a tenth of the shorter timeout (at least every 250 ms).
      connectionsCheckingInterval: Math.max(
        250,
        Math.min(1_000, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 10)),
      ),
    },
    clientErrorHandler: clientErrorHandler(timeouts),
    frameworkErrors: routerErrorHandler,
    trustProxy: limits.trustedProxies.length > 0 ? limits.trustedProxies : false,
    genReqId: adoptRequestId,
    schemaController: { compilersFactory: strictBodyValidators() },
    // Per-request log lines would dominate a flash sale's logs; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
  });
  app.server.maxConnections = limits.maxConnections;
  limitPipelining(app.server, limits.maxPipelinedRequests, opts.metrics);
  installErrorHandling(app, opts.metrics);
  countClientAborts(app, opts.metrics);
  if (opts.trackDbQueries) trackDbQueriesPerRequest(app, opts.metrics);
  installRequestObservability(app, opts.metrics);
  await installApiContract(app, { title: opts.title, description: opts.description ?? opts.title });

  const checks = opts.readiness.filter((r): r is ReadinessCheck => !isAnyOf(r));
  const rules = opts.readiness.filter(isAnyOf);
  for (const rule of rules)
    for (const n of rule.anyOf) if (!checks.some((c) => c.name === n)) throw new Error(`readiness rule ${rule.name} names no check ${n}`);
  // /healthz is liveness: the process answers. It never looks at a dependency, so an outage the
  // service rides out never restarts it (README "Probes").
  app.get("/healthz", { schema: { hide: true } }, async () => ({ status: "ok" }));
  app.get("/readyz", { schema: { hide: true } }, async (_req, reply) => {
    const results = await Promise.all(
      checks.map(async (r) => {
        try {
          await withTimeout(r.check(), READINESS_TIMEOUT_MS, `${r.name} readiness`);
          return [r.name, "ok", r.required !== false] as const;
        } catch (err) {
          return [r.name, (err as Error).message, r.required !== false] as const;
        }
      }),
    );
    const ok = new Set(results.filter(([, s]) => s === "ok").map(([n]) => n));
    const ruled = rules.map((r) => [r.name, r.anyOf.some((n) => ok.has(n)) ? "ok" : r.failure, true] as const);
    const all = [...results, ...ruled];
    const ready = all.every(([, s, required]) => s === "ok" || !required);
    const degraded = all.some(([, s]) => s !== "ok");
    return reply.status(ready ? 200 : 503).send({
      status: ready ? (degraded ? "degraded" : "ready") : "not_ready",
      checks: Object.fromEntries(all.map(([n, s]) => [n, s])),
    });
  });
  app.get("/metrics", { schema: { hide: true } }, async (_req, reply) => {
    reply.header("content-type", opts.metrics.contentType);
    return opts.metrics.metrics();
  });
  return app;
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
