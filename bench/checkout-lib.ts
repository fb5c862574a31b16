/** What bench/checkout-rush.ts and bench/checkout-http.ts share: pgbench's single-row rate and Postgres wait-event sampling. */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { TEST_ENV } from "@flashsale/testkit";
import type pg from "pg";

/** pgbench (the native Postgres' binary) on one row: the single-row ceiling on this machine, now. */
export async function pgbenchSingleRow(pool: pg.Pool, seconds = 10, clients = 10): Promise<{ tps: number; command: string } | null> {
  // The single-row table pgbench decrements (private to the benchmarks; refilled per run).
  await pool.query("CREATE TABLE IF NOT EXISTS bench_single_row (id int PRIMARY KEY, available bigint NOT NULL)");
  await pool.query("INSERT INTO bench_single_row VALUES (1, 1000000000) ON CONFLICT (id) DO UPDATE SET available = 1000000000");
  const candidates = [process.env.PGBENCH, "/usr/lib/postgresql/15/bin/pgbench", "pgbench"].filter(Boolean) as string[];
  const bin = candidates.find((c) => c === "pgbench" || existsSync(c));
  if (!bin) return null;
  const url = new URL(TEST_ENV.databaseUrl);
  const script = "/tmp/flashsale-pgbench-single-row.sql";
  execFileSync("bash", [
    "-c",
    `printf '%s\\n' 'UPDATE bench_single_row SET available = available - 1 WHERE id = 1 AND available >= 1;' > ${script}`,
  ]);
  const args = ["-n", "-M", "prepared", "-c", String(clients), "-j", "2", "-T", String(seconds), "-f", script];
  const env = {
    ...process.env,
    PGHOST: url.hostname,
    PGPORT: url.port || "5432",
    PGUSER: decodeURIComponent(url.username),
    PGPASSWORD: decodeURIComponent(url.password),
    PGDATABASE: url.pathname.slice(1),
  };
  const out = execFileSync(bin, args, { env, encoding: "utf8" });
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1]);
  return { tps: Math.round(tps), command: `pgbench ${args.join(" ")}` };
}

/** Wait events of active backends, sampled every 20 ms while a rush runs. */
export function sampleWaits(pool: pg.Pool): { stop: () => Promise<Record<string, number>> } {
  const counts: Record<string, number> = {};
  let running = true;
  const loop = (async () => {
    while (running) {
      const { rows } = await pool.query<{ w: string; n: number }>(
        `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS w, count(*)::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND state = 'active' AND backend_type = 'client backend'
           AND pid <> pg_backend_pid() AND query NOT LIKE '%pg_stat_activity%' GROUP BY 1`,
      );
      for (const r of rows) counts[r.w] = (counts[r.w] ?? 0) + r.n;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return counts;
    },
  };
}
