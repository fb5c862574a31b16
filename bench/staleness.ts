/**
 * The stale-read window, measured (issue 10 item 8; docs/architecture.md "Freshness"). Everything runs
 * on private processes over the test database: a private Kafka Connect worker with its own Debezium
 * connector and topics, an invalidator and catalogs spawned here, a private Redis (test/private-stack.ts),
 * so pausing any of them touches nothing shared.
 *
 *   pnpm exec tsx bench/staleness.ts [secondsPerScenario=20]
 *
 * Scenarios, each under the same read load (16 concurrent readers over 20 products) with raw-SQL
 * price writes at 20/s:
 *   normal            nothing hurt
 *   invalidator hang  SIGSTOP of the invalidator for 10 s in the middle
 *   Connect hang      SIGSTOP of the Connect worker for 10 s in the middle
 *   schema rollout    catalogs on CACHE_SCHEMA_VERSION N and N+1 side by side, reads spread over both
 *   flash sale        32 readers on 5 hot products, a price change every 100 ms, Connect paused 10 s in the middle
 * and, on a database of its own (no pipeline needed), Postgres statements/s under the same read load:
 *   cache healthy (watermark kept fresh), pipeline outage (watermark 60 s old: every hit revalidated),
 *   no cache at all (the catalog's Redis unreachable: every read goes to Postgres).
 *
 * A read's age = how long the state it returned had been outdated when it began (DB commit times from
 * the price history; load-tests/staleness.ts). Writes bench/results/staleness.{json,md}.
 */
import { writeFile } from "node:fs/promises";
import { FRESHNESS_KEYS, publishWatermark, redisNowMs } from "@flashsale/cache";
import { migrate } from "@flashsale/db";
import { insertProducts, percentile, pgPool, runId, TEST_ENV } from "@flashsale/testkit";
import { Redis } from "ioredis";
import type pg from "pg";
import {
  buildHistory,
  type ClockOffset,
  HISTORY_SQL,
  measureClockOffset,
  type ObservedRead,
  readAgeMs,
  staleness,
} from "../load-tests/staleness.ts";
import { freePort, PrivateConnect, startRedis, startService } from "../test/private-stack.ts";

const SECONDS = Number(process.argv[2] ?? 20);
const PAUSE_MS = 10_000;
const DELTA_MS = Number(process.env.CACHE_STALENESS_BOUND_MS ?? 2_000);
const N = 700_000 + Math.floor(Math.random() * 100_000);
const run = runId();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (x: number) => Math.round(x * 10) / 10;

const pool = pgPool(undefined, 6);
const clockOf = (p: pg.Pool): Promise<ClockOffset> =>
  measureClockOffset(async () =>
    Number((await p.query<{ ms: number }>("SELECT extract(epoch FROM clock_timestamp()) * 1000 AS ms")).rows[0]?.ms),
  );

interface LoadResult {
  reads: ObservedRead[];
  failed: number;
  /** Failed reads by HTTP status and error code (or the exception's name). */
  failures: Record<string, number>;
  paths: Record<string, number>;
  seconds: number;
}

/** `readers` loops of GET over `ids` on `catalogs` while a writer changes a random product every `writeEveryMs`. */
async function load(o: {
  catalogs: string[];
  ids: number[];
  readers: number;
  writeEveryMs: number;
  seconds: number;
  db: pg.Pool;
}): Promise<LoadResult> {
  const until = Date.now() + o.seconds * 1000;
  const out: LoadResult = { reads: [], failed: 0, failures: {}, paths: {}, seconds: o.seconds };
  const fail = (why: string) => {
    out.failed++;
    out.failures[why] = (out.failures[why] ?? 0) + 1;
  };
  const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)] as T;
  const reader = async () => {
    while (Date.now() < until) {
      const id = pick(o.ids);
      const startedAtMs = Date.now();
      try {
        const res = await fetch(`${pick(o.catalogs)}/products/${id}`, { signal: AbortSignal.timeout(5_000) });
        const body = await res.text();
        if (res.status !== 200) {
          fail(`${res.status} ${(/"error":"([A-Z_]+)"/.exec(body) ?? [])[1] ?? ""}`.trim());
          continue;
        }
        out.reads.push({ productId: id, startedAtMs, version: (JSON.parse(body) as { version: number }).version });
        const path = res.headers.get("x-cache") ?? "none";
        out.paths[path] = (out.paths[path] ?? 0) + 1;
      } catch (err) {
        fail((err as Error).name);
      }
    }
  };
  const writer = async () => {
    if (o.writeEveryMs <= 0) return;
    while (Date.now() < until) {
      const next = sleep(o.writeEveryMs);
      await o.db.query("UPDATE products SET list_price_cents = list_price_cents + 1 WHERE id = $1", [pick(o.ids)]).catch(() => {});
      await next;
    }
  };
  await Promise.all([writer(), ...Array.from({ length: o.readers }, reader)]);
  return out;
}

async function judge(name: string, r: LoadResult, ids: number[], clock: ClockOffset) {
  const { rows } = await pool.query<{ productId: number; version: number; committedAtMs: number }>(HISTORY_SQL, [ids]);
  const history = buildHistory(rows);
  const report = staleness(r.reads, history, clock, DELTA_MS);
  // The stale-read window: how old the outdated reads were (reads of the current state have age 0).
  const windows = r.reads.map((x) => readAgeMs(x, history, clock).ageMs).filter((a) => a > 0);
  const row = {
    scenario: name,
    reads: report.reads,
    readsPerS: Math.round(report.reads / r.seconds),
    failedReads: r.failed,
    failures: r.failures,
    outdatedReads: report.outdated,
    windowP50Ms: windows.length ? round(percentile(windows, 50)) : 0,
    windowP99Ms: windows.length ? round(percentile(windows, 99)) : 0,
    windowMaxMs: windows.length ? round(Math.max(...windows)) : 0,
    staleBeyondDelta: report.staleBeyondDelta,
    freshWithinDelta: report.freshWithinDelta,
    nines: round(report.nines),
    paths: r.paths,
    staleSamples: report.samples,
  };
  console.log(JSON.stringify(row));
  return row;
}

/** A load with `hurt` applied PAUSE_MS in the middle. */
async function withPause(o: Parameters<typeof load>[0], pause: () => void, resume: () => void): Promise<LoadResult> {
  const running = load(o);
  await sleep(Math.max(0, (o.seconds * 1000 - PAUSE_MS) / 2));
  pause();
  try {
    await sleep(PAUSE_MS);
  } finally {
    resume();
  }
  return running;
}

const owned: Array<{ stop(): Promise<void> }> = [];
const connect = new PrivateConnect("bench-staleness");
const results: Array<Awaited<ReturnType<typeof judge>>> = [];
const dbLoad: Array<{
  mode: string;
  statementsPerS: number;
  readsPerS: number;
  failedReads: number;
  failures: Record<string, number>;
  paths: Record<string, number>;
}> = [];
try {
  // ---------------- the private pipeline ----------------
  const redis = await startRedis();
  owned.push(redis);
  await connect.start();
  const invalidator = await startService("invalidator", {
    REDIS_URL: redis.url,
    KAFKA_TOPIC_PREFIX: connect.topicPrefix,
    KAFKA_GROUP_ID: `flashsale-bench-staleness-${run}`,
    KAFKA_NEW_GROUP_START: "latest",
    CACHE_SCHEMA_VERSION: String(N),
  });
  owned.push(invalidator);
  const catalog = await startService("catalog", { REDIS_URL: redis.url, CACHE_SCHEMA_VERSION: String(N) });
  owned.push(catalog);
  const products = await insertProducts(
    pool,
    Array.from({ length: 20 }, (_, i) => ({ sku: `BENCH-STALE-${run}-${i}`, listPriceCents: 1000 + i, stock: 1 })),
  );
  const ids = products.map((p) => p.id);
  const hot = ids.slice(0, 5);
  // Warm-up: the pipeline must be streaming (watermark published) before the first measurement.
  for (let i = 0; ; i++) {
    const r = await load({ catalogs: [catalog.url], ids: [ids[0] as number], readers: 2, writeEveryMs: 200, seconds: 3, db: pool });
    const clock = await clockOf(pool);
    const rep = staleness(r.reads, buildHistory((await pool.query(HISTORY_SQL, [[ids[0]]])).rows), clock, 1_000);
    // Streaming = fresh answers *from the cache* (a catalog without a watermark revalidates every hit).
    const hits = (r.paths.HIT ?? 0) + (r.paths["HIT-L1"] ?? 0);
    if (rep.staleBeyondDelta === 0 && hits > 0) break;
    if (i > 30) throw new Error("the private pipeline did not start streaming");
  }

  const base = { catalogs: [catalog.url], ids, readers: 16, writeEveryMs: 50, seconds: SECONDS, db: pool };
  let clock = await clockOf(pool);
  results.push(await judge("normal operation", await load(base), ids, clock));
  results.push(
    await judge(
      "invalidator hang (SIGSTOP 10 s)",
      await withPause(
        base,
        () => invalidator.pause(),
        () => invalidator.resume(),
      ),
      ids,
      clock,
    ),
  );
  await sleep(15_000); // the invalidator rejoins its group and catches up
  results.push(
    await judge(
      "Connect hang (SIGSTOP 10 s)",
      await withPause(
        base,
        () => connect.pause(),
        () => connect.resume(),
      ),
      ids,
      clock,
    ),
  );
  await sleep(10_000);
  const newer = await startService("catalog", { REDIS_URL: redis.url, CACHE_SCHEMA_VERSION: String(N + 1) });
  owned.push(newer);
  clock = await clockOf(pool);
  results.push(
    await judge(`schema rollout (catalogs on N and N+1)`, await load({ ...base, catalogs: [catalog.url, newer.url] }), ids, clock),
  );
  await newer.stop();
  results.push(
    await judge(
      "flash sale, Connect paused 10 s in the middle",
      await withPause(
        { ...base, ids: hot, readers: 32, writeEveryMs: 100, seconds: Math.max(SECONDS, 30) },
        () => connect.pause(),
        () => connect.resume(),
      ),
      hot,
      clock,
    ),
  );

  // ---------------- Postgres load: healthy cache vs pipeline outage vs no cache ----------------
  const dbName = `flashsale_bench_${run.replace(/[^a-z0-9]/g, "")}`;
  await pool.query(`CREATE DATABASE ${dbName}`);
  const dbUrl = new URL(TEST_ENV.databaseUrl);
  dbUrl.pathname = `/${dbName}`;
  try {
    await migrate(dbUrl.toString());
    const own = pgPool(dbUrl.toString(), 2);
    const rows = await insertProducts(
      own,
      Array.from({ length: 20 }, (_, i) => ({ sku: `BENCH-DB-${i}`, listPriceCents: 1000 + i, stock: 1 })),
    );
    const dbIds = rows.map((p) => p.id);
    const statements = async () =>
      Number(
        (
          await pool.query<{ calls: string }>(
            "SELECT coalesce(sum(calls), 0) AS calls FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)",
            [dbName],
          )
        ).rows[0]?.calls ?? 0,
      );
    const r2 = await startRedis();
    owned.push(r2);
    const wm = new Redis(r2.url);
    const cat = await startService("catalog", { REDIS_URL: r2.url, DATABASE_URL: dbUrl.toString(), CACHE_SCHEMA_VERSION: String(N) });
    owned.push(cat);
    const deadRedis = `redis://127.0.0.1:${await freePort()}`;
    const bare = await startService("catalog", { REDIS_URL: deadRedis, DATABASE_URL: dbUrl.toString(), CACHE_SCHEMA_VERSION: String(N) });
    owned.push(bare);
    let fresh = true;
    const keeper = setInterval(() => {
      // Stands in for a healthy invalidator: the watermark is "now" (Redis clock) while `fresh`.
      if (fresh) void redisNowMs(wm).then((now) => publishWatermark(wm, now));
    }, 100);
    try {
      const dbBase = { ids: dbIds, readers: 16, writeEveryMs: 0, seconds: Math.min(SECONDS, 15), db: own };
      const measureDb = async (mode: string, url: string) => {
        const before = await statements();
        const r = await load({ ...dbBase, catalogs: [url] });
        await sleep(500);
        const after = await statements();
        const row = {
          mode,
          statementsPerS: Math.round((after - before) / r.seconds),
          readsPerS: Math.round(r.reads.length / r.seconds),
          failedReads: r.failed,
          failures: r.failures,
          paths: r.paths,
        };
        console.log(JSON.stringify(row));
        dbLoad.push(row);
      };
      await load({ ...dbBase, seconds: 2, catalogs: [cat.url] }); // fill the cache
      await measureDb("cache, pipeline healthy (watermark fresh)", cat.url);
      fresh = false;
      await sleep(300); // a keeper tick in flight lands before the reset
      await wm.del(FRESHNESS_KEYS.watermark); // publishWatermark only moves forward
      await publishWatermark(wm, (await redisNowMs(wm)) - 60_000);
      await measureDb("cache, pipeline outage (watermark 60 s old)", cat.url);
      await measureDb("no cache (Redis unreachable: BYPASS)", bare.url);
    } finally {
      clearInterval(keeper);
      wm.disconnect();
      await own.end();
    }
  } finally {
    for (const p of owned.splice(owned.length - 3)) await p.stop().catch(() => {});
    await pool
      .query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`)
      .catch((e) => console.error(`drop ${dbName}: ${(e as Error).message}`));
  }
} finally {
  for (const p of owned.reverse()) await p.stop().catch(() => {});
  await connect.stop().catch((e) => console.error(`private Connect cleanup: ${(e as Error).message}`));
}

const summary = {
  measuredAt: new Date().toISOString(),
  deltaMs: DELTA_MS,
  secondsPerScenario: SECONDS,
  pauseMs: PAUSE_MS,
  scenarios: results,
  postgresLoad: dbLoad,
};
const md = [
  `# Stale-read window (${summary.measuredAt})`,
  "",
  `\`pnpm exec tsx bench/staleness.ts ${SECONDS}\`, private pipeline on the test database, Δ = ${DELTA_MS} ms. Window = how long the state an outdated read returned had been outdated when the read began (reads of the current state excluded). Stale beyond Δ = outdated by more than Δ. Nines = −log10(stale-beyond-Δ fraction); with none, log10(reads) (all the run can show).`,
  "",
  "| scenario | reads | reads/s | outdated reads | window p50 / p99 / max ms | stale beyond Δ | fresh within Δ | nines |",
  "|---|---|---|---|---|---|---|---|",
  ...results.map(
    (r) =>
      `| ${r.scenario} | ${r.reads} | ${r.readsPerS} | ${r.outdatedReads} | ${r.windowP50Ms} / ${r.windowP99Ms} / ${r.windowMaxMs} | ${r.staleBeyondDelta} | ${(r.freshWithinDelta * 100).toFixed(4)} % | ${r.nines} |`,
  ),
  "",
  "Postgres statements/s in the catalog's own database under the same read load (16 readers, 20 products; pg_stat_statements):",
  "",
  "| mode | Postgres statements/s | reads/s | failed reads |",
  "|---|---|---|---|",
  ...dbLoad.map(
    (d) => `| ${d.mode} | ${d.statementsPerS} | ${d.readsPerS} | ${d.failedReads} ${d.failedReads ? JSON.stringify(d.failures) : ""} |`,
  ),
  "",
].join("\n");
await writeFile(new URL("./results/staleness.json", import.meta.url), `${JSON.stringify(summary, null, 2)}\n`);
await writeFile(new URL("./results/staleness.md", import.meta.url), md);
console.log(`\n${md}`);
await pool.end();
