/**
 * Invalidation lag, two benchmarks:
 *
 *   pnpm exec tsx bench/invalidation-lag.ts [updates=300]
 *     The running stack (scripts/up): time from a Postgres COMMIT (acknowledged to the writer) until
 *     the product's Redis key is gone, over N sequential updates made with plain SQL (not through the
 *     app). Writes bench/results/invalidation-lag.{json,md}; `pnpm exec tsx bench/charts.ts` draws it.
 *
 *   pnpm exec tsx bench/invalidation-lag.ts throughput [seconds-per-rate=3]
 *     Invalidation throughput (issue 10 item 7, issue 12 item 7) on a private pipeline of its own
 *     (test/private-pipeline.ts: a database created from the migrations, its own Debezium connector,
 *     slot and topics, a private redis-server; nothing of scripts/up or the test stack is written).
 *     Both handlings run in the same process, one after the other, on the same pipeline: the
 *     baseline "per-message" (one message, one Redis round trip, one partition at a time: the
 *     invalidator before batching) and "batched" (eachBatch, de-duplicated per id, pipelined,
 *     partitions concurrently). For each:
 *       - the knee: raw-SQL updates of random products at increasing rates, the lag p99 from the
 *         invalidator's invalidation_lag_seconds histogram; the knee is the first rate whose p99
 *         passes 100 ms;
 *       - a 10,000-row import in ONE statement, every product cached beforehand: time from its
 *         COMMIT (acknowledged) until the last of the 10,000 keys is gone (target: < 0.5 s), and a
 *         single-row change committed right after it: how long it waited behind the import.
 *     Writes bench/results/invalidation-throughput.{json,md}.
 */
import { writeFile } from "node:fs/promises";
import { DEFAULT_CACHE_SCHEMA_VERSION } from "@flashsale/config";
import { productKeys } from "@flashsale/product-cache";
import { insertProduct, percentile, pgPool, redisClient, runId } from "@flashsale/testkit";
import type { Redis } from "ioredis";
import type { Histogram } from "prom-client";
import type { RunningInvalidator } from "../services/invalidator/src/consumer.ts";
import { type PrivatePipeline, startPrivatePipeline } from "../test/private-pipeline.ts";

const round = (x: number) => Math.round(x * 10) / 10;

async function sequentialLag(N: number): Promise<void> {
  const CATALOG = process.env.CATALOG_URL ?? "http://127.0.0.1:3001";
  const pool = pgPool();
  const redis = redisClient();

  const p = await insertProduct(pool, { sku: `BENCH-LAG-${runId()}`, listPriceCents: 1000, stock: 1 });
  const key = productKeys(Number(process.env.CACHE_SCHEMA_VERSION ?? DEFAULT_CACHE_SCHEMA_VERSION), p.id).value;
  const lags: number[] = [];

  for (let i = 0; i < N; i++) {
    // Fill the cache through the catalog, exactly as a shopper's read would.
    for (let tries = 0; (await redis.exists(key)) === 0; tries++) {
      if (tries > 200) throw new Error("catalog did not fill the cache; is scripts/up running?");
      await fetch(`${CATALOG}/products/${p.id}`, { signal: AbortSignal.timeout(2_000) });
    }
    await pool.query("UPDATE products SET list_price_cents = $1 WHERE id = $2", [1000 + (i % 500), p.id]);
    const committed = performance.now();
    const deadline = committed + 10_000;
    while ((await redis.exists(key)) === 1) {
      if (performance.now() > deadline) throw new Error(`update ${i}: key still cached after 10 s`);
    }
    lags.push(performance.now() - committed);
  }

  const summary = {
    measuredAt: new Date().toISOString(),
    updates: N,
    method: "sequential UPDATE via pg; lag = COMMIT acknowledged -> Redis EXISTS returns 0 (busy-polled)",
    ms: {
      p50: round(percentile(lags, 50)),
      p90: round(percentile(lags, 90)),
      p99: round(percentile(lags, 99)),
      max: round(Math.max(...lags)),
      min: round(Math.min(...lags)),
    },
    /** Every measured lag in run order, for the distribution chart (bench/charts.ts). */
    samplesMs: lags.map(round),
  };
  await writeFile(new URL("./results/invalidation-lag.json", import.meta.url), `${JSON.stringify(summary, null, 2)}\n`);
  await writeFile(
    new URL("./results/invalidation-lag.md", import.meta.url),
    `# Invalidation lag (commit -> key gone)\n\n${summary.measuredAt}, ${N} updates, ${summary.method}.\n\n| p50 | p90 | p99 | max |\n|---|---|---|---|\n| ${summary.ms.p50} ms | ${summary.ms.p90} ms | ${summary.ms.p99} ms | ${summary.ms.max} ms |\n`,
  );
  console.log(JSON.stringify(summary, null, 2));
  await pool.end();
  await redis.quit();
}

// ------------------------------------------------------------------------------------ throughput

const PRODUCTS = 10_000;
const RATES = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000];
const SCHEMA = 900_000 + Math.floor(Math.random() * 90_000);

interface RateResult {
  targetRowsPerS: number;
  achievedRowsPerS: number;
  rowsPerStatement: number;
  events: number;
  /** Upper bound of the histogram bucket holding the 99th percentile (ms); Infinity above 30 s. */
  lagP99Ms: number;
  lagP50Ms: number;
}

interface ImportResult {
  rows: number;
  commitMs: number;
  /** COMMIT acknowledged -> the last of the rows' keys gone. */
  allEvictedMs: number;
  /** A one-row change committed right after the import: its COMMIT -> its key gone. */
  singleRowBehindImportMs: number;
}

async function throughput(secondsPerRate: number): Promise<void> {
  const pp = await startPrivatePipeline({
    schemaVersion: SCHEMA,
    redisPort: 19_000 + Math.floor(Math.random() * 500),
    withWatermark: false,
  });
  try {
    const ids = await seed(pp);
    // The pipeline's own invalidator is the batched one; the baseline runs as a second group on the same topics.
    await pp.invalidator.stop();
    const results: Record<string, { rates: RateResult[]; knee: number | null; imports: ImportResult[] }> = {};
    for (const handling of ["per-message", "batched"] as const) {
      const metrics = (await import("@flashsale/telemetry")).createMetricsRegistry(`bench-${handling}`);
      const inv = await pp.startAnotherInvalidator({
        handling,
        metrics,
        groupId: `${pp.name}-${handling}`,
        newGroupStartsAt: "latest",
      });
      await settle(pp, ids, inv);
      const lag = metrics.getSingleMetric("invalidation_lag_seconds") as Histogram;
      const rates: RateResult[] = [];
      for (const rate of RATES) {
        lag.reset();
        const r = await sustainedUpdates(pp, ids, rate, secondsPerRate);
        await drain(pp, ids);
        const { p50, p99, count } = await histogramPercentiles(lag);
        rates.push({ ...r, events: count, lagP50Ms: p50, lagP99Ms: p99 });
        console.log(
          `[${handling}] ${rate} rows/s target, ${r.achievedRowsPerS} achieved: lag p50 <= ${p50} ms, p99 <= ${p99} ms (${count} events)`,
        );
        if (p99 > 1_000) break; // far past the knee: the next rates only queue longer
      }
      const imports: ImportResult[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await bulkImport(pp, ids);
        imports.push(r);
        console.log(
          `[${handling}] 10,000-row import: all evicted ${r.allEvictedMs} ms after COMMIT; a single row behind it ${r.singleRowBehindImportMs} ms`,
        );
      }
      const knee = rates.find((r) => r.lagP99Ms > 100)?.achievedRowsPerS ?? null;
      results[handling] = { rates, knee, imports };
      await inv.stop();
    }
    const summary = {
      measuredAt: new Date().toISOString(),
      command: `pnpm exec tsx bench/invalidation-lag.ts throughput ${secondsPerRate}`,
      method:
        "private pipeline (own database, Debezium connector, topics with 3 partitions, redis-server); raw-SQL UPDATEs of random products among 10,000 by 8 connections at each target rate for the given seconds; lag = invalidator eviction time - Postgres commit time (histogram invalidation_lag_seconds, percentiles are bucket upper bounds); import = one UPDATE of 10,000 cached products, time from COMMIT acknowledged until the last key is gone (EXISTS over all 10,000 keys polled every 2 ms)",
      results,
      importSpeedup:
        median(results["per-message"]?.imports.map((i) => i.allEvictedMs) ?? []) /
        median(results.batched?.imports.map((i) => i.allEvictedMs) ?? []),
    };
    await writeFile(new URL("./results/invalidation-throughput.json", import.meta.url), `${JSON.stringify(summary, null, 2)}\n`);
    await writeFile(new URL("./results/invalidation-throughput.md", import.meta.url), markdown(summary));
    console.log(markdown(summary));
  } finally {
    await pp.close();
  }
}

function median(xs: number[]): number {
  return percentile(xs, 50);
}

function markdown(s: {
  measuredAt: string;
  command: string;
  method: string;
  results: Record<string, { rates: RateResult[]; knee: number | null; imports: ImportResult[] }>;
  importSpeedup: number;
}): string {
  const lines = [
    `# Invalidation throughput: per-message (baseline) vs batched`,
    "",
    `${s.measuredAt}, \`${s.command}\`.`,
    "",
    s.method,
    "",
  ];
  lines.push("## Lag p99 by write rate (the knee: first rate with p99 > 100 ms)", "");
  lines.push(
    "| handling | target rows/s | achieved rows/s | rows/statement | events | lag p50 ≤ | lag p99 ≤ |",
    "|---|---|---|---|---|---|---|",
  );
  for (const [h, r] of Object.entries(s.results)) {
    for (const x of r.rates)
      lines.push(
        `| ${h} | ${x.targetRowsPerS} | ${x.achievedRowsPerS} | ${x.rowsPerStatement} | ${x.events} | ${x.lagP50Ms} ms | ${x.lagP99Ms} ms |`,
      );
  }
  lines.push("", "| handling | knee (achieved rows/s where p99 first > 100 ms) |", "|---|---|");
  for (const [h, r] of Object.entries(s.results))
    lines.push(`| ${h} | ${r.knee ?? `not reached (p99 ≤ 100 ms up to ${r.rates.at(-1)?.achievedRowsPerS} rows/s)`} |`);
  lines.push("", "## 10,000-row import in one statement (target: every key evicted < 500 ms after COMMIT)", "");
  lines.push("| handling | run | COMMIT took | all 10,000 evicted after COMMIT | a 1-row change right after it |", "|---|---|---|---|---|");
  for (const [h, r] of Object.entries(s.results))
    r.imports.forEach((x, i) => {
      lines.push(`| ${h} | ${i + 1} | ${x.commitMs} ms | ${x.allEvictedMs} ms | ${x.singleRowBehindImportMs} ms |`);
    });
  lines.push("", `Median import eviction time, per-message / batched: ${round(s.importSpeedup)}x.`, "");
  return lines.join("\n");
}

async function seed(pp: PrivatePipeline): Promise<number[]> {
  const { rows } = await pp.pool.query<{ id: string }>(
    `INSERT INTO products (sku, name, list_price_cents)
     SELECT 'BENCH-' || g, 'bench ' || g, 1000 FROM generate_series(1, $1) g RETURNING id`,
    [PRODUCTS + 1],
  );
  return rows.map((r) => Number(r.id));
}

/** Caches every product at its current version (what a catalog fill leaves; INVALIDATE reads `version`). */
async function cacheAll(redis: Redis, pool: PrivatePipeline["pool"], ids: number[]): Promise<void> {
  const { rows } = await pool.query<{ id: string; version: string }>("SELECT id, version FROM products WHERE id = ANY($1::bigint[])", [
    ids,
  ]);
  const pipe = redis.pipeline();
  for (const r of rows) {
    pipe.set(productKeys(SCHEMA, Number(r.id)).value, JSON.stringify({ version: Number(r.version), storedAt: Date.now() }), "PX", 600_000);
  }
  await pipe.exec();
}

/** Waits until the consumer group is consuming and a probe change comes through. */
async function settle(pp: PrivatePipeline, ids: number[], inv: RunningInvalidator): Promise<void> {
  const deadline = performance.now() + 60_000;
  while (!inv.isConsuming()) {
    if (performance.now() > deadline) throw new Error("invalidator did not join its group");
    await new Promise((r) => setTimeout(r, 50));
  }
  await drain(pp, ids);
}

/** One probe change evicted = everything before it on its partition is done; do it for a few ids. */
async function drain(pp: PrivatePipeline, ids: number[]): Promise<void> {
  const probes = ids.slice(0, 6);
  await cacheAll(pp.redis, pp.pool, probes);
  await pp.pool.query("UPDATE products SET name = name WHERE id = ANY($1::bigint[])", [probes]);
  const keys = probes.map((id) => productKeys(SCHEMA, id).value);
  const deadline = performance.now() + 120_000;
  while ((await pp.redis.exists(...keys)) > 0) {
    if (performance.now() > deadline) throw new Error("pipeline did not drain within 120 s");
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function sustainedUpdates(pp: PrivatePipeline, ids: number[], rate: number, seconds: number) {
  const CONNECTIONS = 8;
  // Statements of one row while 8 connections keep up (about 4,000/s here), then several rows each.
  const rowsPerStatement = Math.max(1, Math.ceil(rate / 4_000));
  const statementsPerS = rate / rowsPerStatement;
  const start = performance.now();
  const end = start + seconds * 1_000;
  let issued = 0;
  let rows = 0;
  const worker = async () => {
    for (;;) {
      const now = performance.now();
      if (now >= end) return;
      // Pace: the statement issued next is due at start + issued / statementsPerS.
      const due = start + (issued / statementsPerS) * 1_000;
      if (due > now) await new Promise((r) => setTimeout(r, due - now));
      issued++;
      const batch = Array.from({ length: rowsPerStatement }, () => ids[Math.floor(Math.random() * ids.length)] as number);
      await pp.pool.query("UPDATE products SET list_price_cents = list_price_cents + 1 WHERE id = ANY($1::bigint[])", [batch]);
      rows += rowsPerStatement;
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  const elapsed = (performance.now() - start) / 1_000;
  return { targetRowsPerS: rate, achievedRowsPerS: Math.round(rows / elapsed), rowsPerStatement };
}

async function histogramPercentiles(h: Histogram): Promise<{ p50: number; p99: number; count: number }> {
  const values = (await h.get()).values;
  const buckets = values
    .filter((v) => v.metricName?.endsWith("_bucket"))
    .map((v) => ({ le: v.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(v.labels.le), n: v.value }))
    .sort((a, b) => a.le - b.le);
  const count = buckets.at(-1)?.n ?? 0;
  const at = (q: number) => (buckets.find((b) => b.n >= q * count)?.le ?? Number.POSITIVE_INFINITY) * 1_000;
  return { p50: at(0.5), p99: at(0.99), count };
}

async function bulkImport(pp: PrivatePipeline, all: number[]): Promise<ImportResult> {
  // The import covers 10,000 products; the single-row change is to one outside it.
  const ids = all.slice(0, PRODUCTS);
  const single = all[PRODUCTS] as number;
  await cacheAll(pp.redis, pp.pool, ids);
  const keys = ids.map((id) => productKeys(SCHEMA, id).value);
  const t0 = performance.now();
  await pp.pool.query("UPDATE products SET list_price_cents = list_price_cents + 1 WHERE id = ANY($1::bigint[])", [ids]);
  const committed = performance.now();
  // The unrelated single-row change right after it (its key cached again first, at its new version - 1).
  await pp.redis.set(productKeys(SCHEMA, single).value, JSON.stringify({ version: 1, storedAt: Date.now() }), "PX", 600_000);
  await pp.pool.query("UPDATE products SET list_price_cents = list_price_cents + 1 WHERE id = $1", [single]);
  const singleCommitted = performance.now();
  let singleGone: number | null = null;
  let allGone: number | null = null;
  const deadline = committed + 120_000;
  while (allGone === null || singleGone === null) {
    const now = performance.now();
    if (now > deadline) throw new Error("import not evicted within 120 s");
    if (singleGone === null && (await pp.redis.exists(productKeys(SCHEMA, single).value)) === 0) singleGone = performance.now();
    if (allGone === null && (await pp.redis.exists(...keys)) === 0) allGone = performance.now();
    await new Promise((r) => setTimeout(r, 2));
  }
  return {
    rows: ids.length,
    commitMs: round(committed - t0),
    allEvictedMs: round(allGone - committed),
    singleRowBehindImportMs: round(singleGone - singleCommitted),
  };
}

// Dispatched last: the constants above must be initialised first.
if (process.argv[2] === "throughput") {
  await throughput(Number(process.argv[3] ?? 3));
} else {
  await sequentialLag(Number(process.argv[2] ?? 300));
}
