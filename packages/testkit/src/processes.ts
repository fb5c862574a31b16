import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { Redis } from "ioredis";
import { REPO_ROOT, testServiceEnv } from "./env.ts";
import { waitFor } from "./wait.ts";

/**
 * A private, real redis-server on its own port (no persistence), for tests that
 * kill and restart Redis without disturbing the shared stack.
 */
export class PrivateRedis {
  private proc: ChildProcess | null = null;
  readonly port: number;
  constructor(port: number) {
    this.port = port;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.proc = spawn("redis-server", ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdio: "ignore",
    });
    const probe = new Redis(this.url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on("error", () => {});
    await waitFor(
      async () => {
        try {
          await probe.connect();
          return (await probe.ping()) === "PONG" ? true : undefined;
        } catch {
          return undefined;
        }
      },
      { timeoutMs: 10_000, intervalMs: 20, what: `redis-server on ${this.port}` },
    );
    probe.disconnect();
  }

  /** kill -9: no goodbye to clients, like a crash. */
  async kill(): Promise<void> {
    const p = this.proc;
    // Already gone (a process killed by a signal has a signalCode and no exitCode): nothing to wait for.
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await exited;
  }
}

export interface ServiceProcess {
  url: string;
  stop(): Promise<void>;
}

/**
 * Runs a real service process (its main.ts, as scripts/up does) on `port` against the test
 * stack (testServiceEnv, overridable by `env`), and waits for /readyz. For tests and benchmarks that need several
 * processes (e.g. two catalog instances sharing Redis).
 */
export async function spawnService(
  name: "catalog" | "checkout" | "invalidator",
  port: number,
  env: Record<string, string>,
): Promise<ServiceProcess> {
  const proc = spawn(
    process.execPath,
    ["--import", "tsx", "--import", "./packages/telemetry/src/register.ts", `services/${name}/src/main.ts`],
    {
      cwd: REPO_ROOT,
      // FLASHSALE_DEV=1: a test stack may use the public default ADMIN_TOKEN (packages/config).
      env: {
        ...process.env,
        LOG_LEVEL: "warn",
        OTEL_SERVICE_NAME: name,
        FLASHSALE_DEV: "1",
        ...testServiceEnv(),
        ...env,
        PORT: String(port),
      },
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  const url = `http://127.0.0.1:${port}`;
  // What the last probe saw, for the error if the service never becomes ready.
  let lastProbe = "no answer yet";
  try {
    await waitFor(
      async () => {
        if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${name} exited (${proc.exitCode ?? proc.signalCode})`);
        try {
          const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) });
          if (res.ok) return true;
          lastProbe = `${res.status} ${(await res.text()).slice(0, 300)}`;
        } catch (err) {
          lastProbe = (err as Error).message;
        }
        return undefined;
      },
      // Start-up on a loaded 2-core machine (the whole suite running) can take many seconds.
      { timeoutMs: 60_000, intervalMs: 100, what: `${name} on :${port}` },
    );
  } catch (err) {
    // Never leave a half-started service behind (it would keep the test run from exiting).
    proc.kill("SIGKILL");
    throw new Error(`${(err as Error).message}; last /readyz probe: ${lastProbe}`);
  }
  return {
    url,
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await exited;
    },
  };
}

/**
 * A private 3-master Redis Cluster from the same redis-server binary (no replicas,
 * no persistence, its own ports and folder), for the cluster-mode tests.
 */
export class PrivateRedisCluster {
  private readonly servers: ChildProcess[] = [];
  readonly basePort: number;
  constructor(basePort: number) {
    this.basePort = basePort;
  }

  get nodes(): string[] {
    return [0, 1, 2].map((i) => `127.0.0.1:${this.basePort + i}`);
  }

  async start(): Promise<void> {
    const dir = mkdtempSync(`${tmpdir()}/flashsale-cluster-`);
    for (let i = 0; i < 3; i++) {
      const port = this.basePort + i;
      this.servers.push(
        spawn(
          "redis-server",
          [
            "--port",
            String(port),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            `${dir}/nodes-${port}.conf`,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            dir,
          ],
          { stdio: "ignore" },
        ),
      );
    }
    for (const n of this.nodes) {
      const [host, port] = n.split(":");
      await waitFor(
        async () => {
          const probe = new Redis({ host, port: Number(port), lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
          probe.on("error", () => {});
          try {
            await probe.connect();
            return (await probe.ping()) === "PONG" ? true : undefined;
          } catch {
            return undefined;
          } finally {
            probe.disconnect();
          }
        },
        { timeoutMs: 10_000, intervalMs: 50, what: `cluster node ${n}` },
      );
    }
    execFileSync("redis-cli", ["--cluster", "create", ...this.nodes, "--cluster-replicas", "0", "--cluster-yes"], {
      stdio: "ignore",
      timeout: 30_000,
    });
    const first = new Redis({ port: this.basePort, lazyConnect: true });
    first.on("error", () => {});
    await first.connect();
    await waitFor(async () => (String(await first.cluster("INFO")).includes("cluster_state:ok") ? true : undefined), {
      timeoutMs: 20_000,
      intervalMs: 100,
      what: "cluster_state:ok",
    });
    first.disconnect();
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.servers.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null) return resolve();
            p.once("exit", () => resolve());
            p.kill("SIGKILL");
          }),
      ),
    );
  }
}
