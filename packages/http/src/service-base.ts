import swagger from "@fastify/swagger";
import Fastify, { type FastifyInstance, type FastifyServerOptions, LogController } from "fastify";
import type { Registry } from "prom-client";
import { trackDbQueriesPerRequest } from "./db-queries.ts";
import { installErrorHandling } from "./errors.ts";

export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
  /** false: reported, but the service still answers without it (degraded, e.g. cache bypass). */
  required?: boolean;
}

export interface ServiceBaseOptions {
  title: string;
  logger: FastifyServerOptions["loggerInstance"];
  metrics: Registry;
  readiness: ReadinessCheck[];
  bodyLimit?: number;
  /**
   * Count database queries per request (`http_request_db_queries`). Off by default: the
   * per-request AsyncLocalStorage it needs costs ~20 % of a 40k req/s hot path (bench/).
   */
  trackDbQueries?: boolean;
}

const READINESS_TIMEOUT_MS = 1_000;

/**
 * The part every flashsale service shares: JSON errors with codes, OpenAPI at
 * /docs/json, /healthz (process up), /readyz (dependencies reachable, each
 * check bounded by a timeout) and /metrics (Prometheus text).
 */
export async function createServiceBase(opts: ServiceBaseOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger,
    bodyLimit: opts.bodyLimit ?? 64 * 1024,
    // Per-request log lines would dominate a flash sale's logs; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
  });
  installErrorHandling(app);
  if (opts.trackDbQueries) trackDbQueriesPerRequest(app, opts.metrics);
  await app.register(swagger, { openapi: { info: { title: opts.title, version: "1.0.0" } } });
  app.get("/docs/json", { schema: { hide: true } }, async () => app.swagger());

  app.get("/healthz", { schema: { hide: true } }, async () => ({ status: "ok" }));
  app.get("/readyz", { schema: { hide: true } }, async (_req, reply) => {
    const results = await Promise.all(
      opts.readiness.map(async (r) => {
        try {
          await withTimeout(r.check(), READINESS_TIMEOUT_MS, `${r.name} readiness`);
          return [r.name, "ok", r.required !== false] as const;
        } catch (err) {
          return [r.name, (err as Error).message, r.required !== false] as const;
        }
      }),
    );
    const ready = results.every(([, s, required]) => s === "ok" || !required);
    const degraded = results.some(([, s]) => s !== "ok");
    return reply.status(ready ? 200 : 503).send({
      status: ready ? (degraded ? "degraded" : "ready") : "not_ready",
      checks: Object.fromEntries(results.map(([n, s]) => [n, s])),
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
