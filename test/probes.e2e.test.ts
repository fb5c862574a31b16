/**
 * Probes as README "Probes" defines them, on real processes: the invalidator's /healthz answers
 * before Kafka is reachable (a startup or liveness probe must not restart it for an outage it waits
 * out), while its /readyz says it is not consuming yet; once Kafka is reachable it consumes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { connect, createServer, type Socket } from "node:net";
import { TEST_ENV, testServiceEnv, waitFor } from "@flashsale/testkit";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, ROOT } from "./private-stack.ts";

const procs: ChildProcess[] = [];

afterAll(async () => {
  for (const p of procs) {
    if (p.exitCode !== null || p.signalCode !== null) continue;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await exited;
  }
});

describe("invalidator probes", () => {
  it("answers /healthz while Kafka is unreachable, and /readyz says not consuming", async () => {
    const [port, deadKafka] = [await freePort(), await freePort()];
    const proc = spawn(process.execPath, ["--import", "tsx", "services/invalidator/src/main.ts"], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...testServiceEnv(),
        LOG_LEVEL: "warn",
        FLASHSALE_DEV: "1",
        KAFKA_BROKERS: `127.0.0.1:${deadKafka}`,
        KAFKA_GROUP_ID: `flashsale-test-probes-${port}`,
        CONSISTENCY_CHECK_INTERVAL_MS: "0",
        PORT: String(port),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    procs.push(proc);
    let log = "";
    proc.stdout?.on("data", (d) => {
      log += d;
    });
    proc.stderr?.on("data", (d) => {
      log += d;
    });
    const get = (path: string) =>
      fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2_000) }).then(
        async (r) => ({ status: r.status, body: await r.text() }),
        () => null,
      );
    await waitFor(
      async () => {
        if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`invalidator exited (${proc.exitCode ?? proc.signalCode})`);
        return (await get("/healthz"))?.status === 200 ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: "invalidator /healthz with Kafka unreachable" },
    );
    const ready = await get("/readyz");
    expect(ready?.status).toBe(503);
    expect(JSON.parse(ready?.body ?? "{}")).toMatchObject({ status: "not_ready", checks: { kafka: "consumer not running", redis: "ok" } });
    // kafkajs gives up after its own retries; the process logs that it retries instead of exiting.
    await waitFor(
      async () => {
        if (proc.exitCode !== null || proc.signalCode !== null)
          throw new Error(`invalidator exited (${proc.exitCode ?? proc.signalCode}): ${log.slice(-500)}`);
        return log.includes("kafka not reachable yet; retrying") ? true : undefined;
      },
      { timeoutMs: 80_000, intervalMs: 200, what: "the invalidator to retry Kafka after kafkajs gave up" },
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(proc.exitCode).toBeNull();
    expect((await get("/healthz"))?.status).toBe(200);

    // Kafka becomes reachable (a proxy to the real broker now listens on the dead port; after the
    // bootstrap the client talks to the broker it advertises): the retry must start consuming. A
    // failed attempt used to leave its metrics registered, so every retry failed for ever.
    const [host, kafkaPort] = (TEST_ENV.kafkaBrokers[0] ?? "127.0.0.1:9092").split(":");
    const sockets = new Set<Socket>();
    const proxy = createServer((client) => {
      const upstream = connect(Number(kafkaPort), host ?? "127.0.0.1");
      sockets.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      for (const s of [client, upstream]) s.on("error", () => {}).on("close", () => (s === client ? upstream : client).destroy());
    });
    await new Promise<void>((r) => proxy.listen(deadKafka, "127.0.0.1", r));
    try {
      await waitFor(async () => ((await get("/readyz"))?.status === 200 ? true : undefined), {
        timeoutMs: 90_000,
        intervalMs: 250,
        what: `the invalidator consuming once Kafka is reachable: ${log.slice(-400)}`,
      });
    } finally {
      // close() waits for open connections to end: the invalidator's bootstrap connection does not.
      for (const sock of sockets) sock.destroy();
      await new Promise((r) => proxy.close(r));
    }
  }, 200_000);
});
