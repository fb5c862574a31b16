import type { FastifyInstance } from "fastify";

/**
 * SIGTERM/SIGINT: stop accepting, finish in-flight requests, then release the
 * service's clients (in the order given). A second signal or a hung close exits.
 */
export function closeGracefully(app: FastifyInstance, cleanups: Array<() => Promise<unknown>>, timeoutMs = 10_000): void {
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) process.exit(1);
    closing = true;
    app.log.info({ signal }, "shutting down");
    const timer = setTimeout(() => {
      app.log.error("graceful shutdown timed out");
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    try {
      await app.close();
      for (const c of cleanups) await c().catch((err) => app.log.warn({ err }, "cleanup failed"));
      process.exit(0);
    } catch (err) {
      app.log.error({ err }, "shutdown failed");
      process.exit(1);
    }
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}
