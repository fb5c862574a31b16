/**
 * Shared helpers of the catalog benchmarks (soak, overload, warm-up, peers): process CPU and memory
 * from /proc, CPU pinning, and the pid behind a listening port.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** The pid listening on a local TCP port (the service processes testkit spawns). */
export function pidOnPort(port: number): number {
  const out = execFileSync("ss", ["-Hltnp", `sport = :${port}`], { encoding: "utf8" });
  const m = /pid=(\d+)/.exec(out);
  if (!m) throw new Error(`no process listens on :${port}`);
  return Number(m[1]);
}

/** CPU seconds (user + system) the process has used so far. */
export function cpuSeconds(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return Number.NaN; // the process is gone
  }
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of /proc/pid/stat (utime, stime), counted from the state field (3rd) here.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resident set size in MiB. */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Math.round(Number(m[1]) / 1024) : Number.NaN;
}

/**
 * Pins a process (all its threads) to one CPU. On the 2-core machine the server under test gets
 * CPU 0 and the load generator (this benchmark process) CPU 1, so neither starves the other; other
 * processes of the machine still run on both.
 */
export function pin(pid: number, cpu: number): void {
  execFileSync("taskset", ["-a", "-cp", String(cpu), String(pid)], { stdio: "ignore" });
}

/** A free local TCP port. */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === "object" && addr ? addr.port : 0));
    });
  });
}

/**
 * A private redis-server for one benchmark (no other run's keys, free to flush), and the freshness
 * watermark published into it every 100 ms. The benchmark stands in for the invalidator: every
 * write it makes is evicted by itself before it goes on, so "every committed change up to now is
 * applied" is true (docs/architecture.md#cache-protocol, staleness bound). Without a watermark the
 * catalogs would revalidate every read against Postgres (a never-published watermark counts as old).
 */
export async function privateRedis(): Promise<{ url: string; stop(): Promise<void> }> {
  const { PrivateRedis } = await import("@flashsale/testkit");
  const { publishWatermark, createRedisClient, redisNowMs } = await import("@flashsale/cache");
  const server = new PrivateRedis(await freePort());
  await server.start();
  const client = createRedisClient({ url: server.url, clusterNodes: [], commandTimeoutMs: 1_000, failFast: false });
  const publish = async () => void (await publishWatermark(client, await redisNowMs(client)));
  await publish();
  const timer = setInterval(() => void publish().catch(() => {}), 100);
  return {
    url: server.url,
    async stop() {
      clearInterval(timer);
      client.disconnect();
      await server.kill();
    },
  };
}
