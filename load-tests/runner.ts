/**
 * One load-test run (load-tests/run calls it through run.ts; test/observability.e2e.test.ts calls
 * it directly against the test stack): picks a generator (a `k6` on PATH, else the `load` profile
 * of docker-compose.yml with the official k6 image, else load-tests/native.ts), scrapes the
 * services' /metrics every second while it runs, then runs the consistency checker and the order
 * audit and writes <scenario>.json, .md and a self-contained .html report with charts.
 * k6 is never downloaded or built here: it is the user's own, or the image's.
 */
import { spawnSync } from "node:child_process";
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { DEFAULT_CACHE_SCHEMA_VERSION } from "@flashsale/config";
import { auditOrders, checkCacheConsistency } from "@flashsale/consistency";
import { pgPool, productReadCount, redisClient } from "@flashsale/testkit";
import type pg from "pg";
import { runNative } from "./native.ts";
import {
  buildTimeline,
  type ChartSpec,
  evaluateThresholds,
  histogramPercentile,
  htmlTable,
  outcomeTotals,
  PALETTE,
  parseExposition,
  percentile,
  readSamples,
  renderChart,
  renderHtml,
  type Scrape,
  seriesDelta,
  type Verdict,
} from "./report.ts";
import { scenario as defineScenario, type SetupData } from "./scenarios.js";

const ROOT = new URL("../", import.meta.url).pathname;
const OUTCOME_COLOURS: Record<string, string> = {
  placed: PALETTE[2] as string,
  PRICE_CHANGED: PALETTE[3] as string,
  OUT_OF_STOCK: PALETTE[7] as string,
  CART_EMPTY: PALETTE[7] as string,
};
export type Generator = "k6" | "docker" | "native";

export interface RunOptions {
  scenario: string;
  /** KEY=value overrides of the scenario's environment (DURATION_S, PEAK_RATE, …). */
  env: Record<string, string>;
  outDir: string;
  generator?: Generator | "auto";
  /** The stack under load; defaults: what scripts/up serves. */
  catalogUrl?: string;
  checkoutUrl?: string;
  invalidatorUrl?: string;
  databaseUrl?: string;
  redisUrl?: string;
  log?: (line: string) => void;
  /**
   * "all" (default): the checker and the audit cover every cached key and order since the start,
   * right for a stack that only this run loads. "run": only this run's products, for a stack that
   * other tests share (their leftovers are not this run's verdict).
   */
  scope?: "all" | "run";
}

function ok(cmd: string, args: string[]): boolean {
  try {
    return spawnSync(cmd, args, { stdio: "ignore", timeout: 15_000 }).status === 0;
  } catch {
    return false;
  }
}

/** k6 on PATH, else Docker with compose and a reachable engine, else the native runner. */
export function pickGenerator(wanted: Generator | "auto" = "auto"): Generator {
  if (!["auto", "k6", "docker", "native"].includes(wanted))
    throw Object.assign(new Error(`LOAD_GENERATOR must be k6, docker or native, got '${wanted}'`), { usage: true });
  if (wanted !== "auto") return wanted;
  if (ok("k6", ["version"])) return "k6";
  if (ok("docker", ["compose", "version"]) && ok("docker", ["info"])) return "docker";
  return "native";
}

/**
 * `docker compose --profile load run … k6 run …` for a scenario, and the environment to run it in.
 * The container sees only what is passed with -e: the overrides, the targets and the admin token
 * (the scenario's own, i.e. ADMIN_TOKEN of this process or its KEY=value; a compose stack refuses the
 * public default, so without it the setup's admin calls would be 401). Compose interpolates the whole
 * file before running one service, and the catalog's ADMIN_TOKEN is required there: the token is set
 * for that too, so the load profile runs whether or not the shell exported one.
 */
export function dockerK6Command(o: {
  scenario: string;
  env: Record<string, string>;
  urls: { catalog: string; checkout: string };
  adminToken: string;
  samplesPath: string;
  summaryPath: string;
}): { args: string[]; env: NodeJS.ProcessEnv } {
  const pass: [string, string][] = [
    ...Object.entries(o.env).filter(([k]) => !["CATALOG_URL", "CHECKOUT_URL", "ADMIN_TOKEN"].includes(k)),
    ["CATALOG_URL", o.urls.catalog],
    ["CHECKOUT_URL", o.urls.checkout],
    ["ADMIN_TOKEN", o.adminToken],
    ["K6_NO_USAGE_REPORT", "true"],
    ["SUMMARY_FILE", `/flashsale/${relative(ROOT, o.summaryPath)}`],
  ];
  return {
    args: [
      "compose",
      "--profile",
      "load",
      "run",
      "--rm",
      ...pass.flatMap(([k, v]) => ["-e", `${k}=${v}`]),
      "k6",
      "run",
      "--quiet",
      "--out",
      `json=/flashsale/${relative(ROOT, o.samplesPath)}`,
      `/flashsale/load-tests/${o.scenario}.js`,
    ],
    env: { ...process.env, ADMIN_TOKEN: o.adminToken },
  };
}

/**
 * The catalog's product reads from Postgres (its read-on-miss statement in pg_stat_statements), in
 * the database under load only: the view spans the whole cluster, so without the dbid filter the
 * test stack, scratch databases and every other run on the same Postgres counted as this run's
 * reads (the "Postgres reads per write" of the stampede scenario). The same count as the tests'
 * (packages/testkit productReadCount).
 */
export const productReads: (pool: pg.Pool) => Promise<number> = productReadCount;

async function scrape(url: string): Promise<Map<string, number>> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) });
  return parseExposition(await res.text());
}

export interface RunResult {
  ok: boolean;
  summary: Record<string, unknown>;
  files: { json: string; md: string; html: string };
}

export async function runLoadTest(o: RunOptions): Promise<RunResult> {
  const log = o.log ?? ((l: string) => console.log(l));
  const urls = {
    catalog: o.catalogUrl ?? process.env.CATALOG_URL ?? "http://127.0.0.1:3001",
    checkout: o.checkoutUrl ?? process.env.CHECKOUT_URL ?? "http://127.0.0.1:3002",
    invalidator: o.invalidatorUrl ?? process.env.INVALIDATOR_URL ?? "http://127.0.0.1:3003",
  };
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ...o.env,
    CATALOG_URL: urls.catalog,
    CHECKOUT_URL: urls.checkout,
  };
  let s: ReturnType<typeof defineScenario>;
  try {
    s = defineScenario(o.scenario, env);
  } catch (err) {
    // A refused KEY=value: nothing has been sent yet.
    throw Object.assign(new Error((err as Error).message), { usage: true });
  }
  const generator = pickGenerator(o.generator ?? ((process.env.LOAD_GENERATOR as Generator | undefined) || "auto"));
  for (const [name, url] of Object.entries(urls)) {
    const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(3_000) }).catch(() => null);
    if (!r?.ok) throw new Error(`${name} at ${url} is not ready (start the stack: scripts/up)`);
  }
  await mkdir(o.outDir, { recursive: true });
  // Raw samples live under the results folder (git-ignored) so the k6 container can write them too.
  const rawDir = join(ROOT, "load-tests/results/.raw", `${o.scenario}-${process.pid}-${Date.now()}`);
  await mkdir(rawDir, { recursive: true });
  // The k6 image runs as its own unprivileged user: it must be able to write its samples here.
  if (generator === "docker") await chmod(rawDir, 0o777);
  const samplesPath = join(rawDir, "samples.ndjson");
  const summaryPath = join(rawDir, "summary.json");

  const pool = pgPool(o.databaseUrl ?? process.env.DATABASE_URL ?? "postgresql://flashsale:flashsale@127.0.0.1:5432/flashsale");
  const redis = redisClient(o.redisUrl ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
  try {
    const scrapeAll = async (): Promise<Scrape> => {
      const [catalog, checkout, invalidator] = await Promise.all([scrape(urls.catalog), scrape(urls.checkout), scrape(urls.invalidator)]);
      return { t: Date.now(), catalog, checkout, invalidator };
    };
    const startedAt = new Date();
    const readsBefore = await productReads(pool);
    const scrapes: Scrape[] = [await scrapeAll()];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        await new Promise((r) => setTimeout(r, 1_000 - ((Date.now() - startedAt.getTime()) % 1_000)));
        if (!sampling) break;
        const snap = await scrapeAll().catch(() => null); // a missed second is a gap in the charts, not a failed run
        if (snap) scrapes.push(snap);
      }
    })();

    log(
      `[load-tests] ${o.scenario} with ${generator === "native" ? "the native runner (Node + undici)" : generator === "k6" ? "k6 from PATH" : "k6 in docker compose (profile load)"}`,
    );
    let generatorOk = true;
    let setupData: SetupData = { marks: [] };
    let dropped = 0;
    let iterationErrors = 0;
    try {
      if (generator === "native") {
        const r = await runNative(s, env, samplesPath);
        setupData = r.setupData;
        dropped = r.droppedIterations;
        iterationErrors = r.iterationErrors;
        for (const e of r.firstErrors) log(`[load-tests] iteration error: ${e}`);
      } else {
        const script = `load-tests/${o.scenario}.js`;
        const docker = dockerK6Command({ scenario: o.scenario, env: o.env, urls, adminToken: s.urls.adminToken, samplesPath, summaryPath });
        const res =
          generator === "k6"
            ? spawnSync("k6", ["run", "--quiet", "--out", `json=${samplesPath}`, script], {
                cwd: ROOT,
                stdio: "inherit",
                env: { ...env, SUMMARY_FILE: summaryPath, K6_NO_USAGE_REPORT: "true" },
              })
            : spawnSync("docker", docker.args, { cwd: ROOT, stdio: "inherit", env: docker.env });
        // k6 exits 99 when a threshold fails; the thresholds are evaluated below from the samples too.
        generatorOk = res.status === 0 || res.status === 99;
        if (!generatorOk) log(`[load-tests] k6 exited with ${res.status ?? res.signal}`);
        setupData = (JSON.parse(await readFile(summaryPath, "utf8").catch(() => "{}")) as { setupData?: SetupData }).setupData ?? {
          marks: [],
        };
      }
    } finally {
      sampling = false;
      await sampler;
    }
    const finishedAt = Date.now();
    // A service that went down during the run must not cost the report: the last scrape that
    // answered stands in, and the verdict below says which service stopped answering.
    let endScrapeError: string | null = null;
    try {
      scrapes.push(await scrapeAll());
    } catch (err) {
      const down: string[] = [];
      for (const [name, url] of Object.entries(urls))
        if (
          !(await scrape(url).then(
            () => true,
            () => false,
          ))
        )
          down.push(name);
      endScrapeError = `${down.join(", ") || "a service"} did not answer /metrics after the run (${(err as Error).message})`;
      log(`[load-tests] ${endScrapeError}`);
    }
    const readsAfter = await productReads(pool).catch(() => readsBefore);

    // Settle: the last changes need their invalidation (milliseconds); the checker's grace covers it.
    const runProducts = [
      ...((setupData.ids as number[] | undefined) ?? []),
      ...(setupData.id !== undefined ? [setupData.id as number] : []),
    ];
    const scoped = (o.scope ?? process.env.LOAD_SCOPE) === "run";
    const fullCheck = await checkCacheConsistency({
      redis,
      pool,
      schemaVersion: Number(process.env.CACHE_SCHEMA_VERSION ?? DEFAULT_CACHE_SCHEMA_VERSION),
      graceMs: 2_000,
    });
    const inScope = fullCheck.inconsistent.filter((i) => !scoped || runProducts.includes(i.productId));
    const cache = {
      keysChecked: fullCheck.keysChecked,
      inconsistent: inScope,
      staleBeyondGrace: inScope.filter((i) => i.ageMs > 2_000).length,
    };
    const orders = await auditOrders(pool, scoped ? { since: startedAt, productIds: runProducts } : { since: startedAt });
    const points = await readSamples(samplesPath);

    const first = scrapes[0] as Scrape;
    const lastScrape = scrapes.at(-1) as Scrape;
    const thresholds = evaluateThresholds(s.thresholds, points);
    const httpPoints = points.filter((p) => p.metric === "http_req_duration");
    const names = [...new Set(httpPoints.map((p) => p.tags.name ?? "other"))].sort();
    const endpoints = names.map((name) => {
      const v = httpPoints.filter((p) => p.tags.name === name).map((p) => p.value);
      return { endpoint: name, requests: v.length, p50: percentile(v, 50), p99: percentile(v, 99), max: Math.max(...v) };
    });
    const count = (metric: string, tag?: [string, string]) =>
      points.filter((p) => p.metric === metric && (!tag || p.tags[tag[0]] === tag[1])).reduce((n, p) => n + p.value, 0);
    const visible = points.filter((p) => p.metric === "admin_write_visible_ms").map((p) => p.value);
    const ev = (e: string) => seriesDelta(first.catalog, lastScrape.catalog, "catalog_cache_events_total", "event", e);
    const reads = ev("l1_hit") + ev("l1_miss");
    const durationS = (finishedAt - startedAt.getTime()) / 1000;
    const clientOutcomes: Record<string, number> = {};
    for (const p of points.filter((x) => x.metric === "checkout_outcomes")) {
      const code = p.tags.code ?? "?";
      clientOutcomes[code] = (clientOutcomes[code] ?? 0) + p.value;
    }
    const summary = {
      scenario: o.scenario,
      generator,
      env: o.env,
      targets: urls,
      startedAt: startedAt.toISOString(),
      durationS: Math.round(durationS * 10) / 10,
      requests: httpPoints.length,
      requestsPerSec: Math.round(httpPoints.length / durationS),
      failedRequests: count("http_req_failed"),
      droppedIterations: dropped || count("dropped_iterations"),
      iterationErrors,
      endpoints,
      cache: {
        l1HitRatio: reads ? ev("l1_hit") / reads : null,
        redisHitRatioOfL1Misses: ev("l1_miss") ? ev("hit") / ev("l1_miss") : null,
        misses: ev("miss") + ev("bypass") + ev("lease_wait_timeout"),
        postgresProductReads: readsAfter - readsBefore,
      },
      invalidationLagMs: {
        p50: histogramPercentile(first.invalidator, lastScrape.invalidator, "invalidation_lag_seconds", 50),
        p99: histogramPercentile(first.invalidator, lastScrape.invalidator, "invalidation_lag_seconds", 99),
        evictions: seriesDelta(first.invalidator, lastScrape.invalidator, "invalidator_events_total", "outcome", "evicted"),
      },
      staleSaleReads: count("stale_sale_reads"),
      adminWriteVisibleMs: visible.length
        ? { p50: percentile(visible, 50), p99: percentile(visible, 99), max: Math.max(...visible) }
        : null,
      adminWrites: points.some((p) => p.metric === "admin_writes") ? count("admin_writes") : null,
      checkoutOutcomes: outcomeTotals(first.checkout, lastScrape.checkout),
      clientCheckoutOutcomes: clientOutcomes,
      wrongPriceOrders: orders.wrongPrice.length,
      orderLinesAudited: orders.orderLinesChecked,
      negativeStockProducts: orders.negativeStockProducts,
      consistency: {
        scope: scoped ? `this run's ${runProducts.length} products` : "all cached products",
        keysChecked: cache.keysChecked,
        inconsistent: cache.inconsistent.length,
        staleBeyondGrace: cache.staleBeyondGrace,
      },
      thresholds,
      thresholdsFailed: thresholds.filter((t) => !t.ok).map((t) => t.expression),
      dbReadsPerWrite: null as number | null,
    };
    if (summary.adminWrites) summary.dbReadsPerWrite = Math.round((summary.cache.postgresProductReads / summary.adminWrites) * 100) / 100;

    const verdicts: Verdict[] = [
      {
        label: "thresholds",
        ok: summary.thresholdsFailed.length === 0,
        detail: summary.thresholdsFailed.length ? summary.thresholdsFailed.join("; ") : `${thresholds.length} passed`,
      },
      {
        label: "no 5xx / transport errors",
        ok: summary.failedRequests === 0,
        detail: `${summary.failedRequests} failed of ${summary.requests}`,
      },
      {
        label: "order audit: price at commit",
        ok: summary.wrongPriceOrders === 0,
        detail: `${summary.wrongPriceOrders} wrong-price orders of ${summary.orderLinesAudited} lines audited`,
      },
      { label: "no oversell", ok: summary.negativeStockProducts === 0, detail: `${summary.negativeStockProducts} products with stock < 0` },
      {
        label: "consistency checker",
        ok: summary.consistency.staleBeyondGrace === 0,
        detail: `${summary.consistency.staleBeyondGrace} stale of ${summary.consistency.keysChecked} cached keys after the run`,
      },
      {
        label: "no sale price after the sale closed",
        ok: summary.staleSaleReads === 0,
        detail: `${summary.staleSaleReads} stale sale reads`,
      },
      {
        label: "services up at the end",
        ok: endScrapeError === null,
        detail: endScrapeError ?? "catalog, checkout and invalidator answered /metrics",
      },
    ];
    const runOk = generatorOk && verdicts.every((v) => v.ok);
    const fmt = (x: number | null | undefined, d = 1) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));
    const command = `load-tests/run ${o.scenario}${
      Object.keys(o.env).length
        ? ` ${Object.entries(o.env)
            .map(([k, v]) => `${k}=${v}`)
            .join(" ")}`
        : ""
    }`;
    const generatorText = generator === "native" ? "native runner (Node + undici)" : "k6";
    const targetsText = `catalog ${urls.catalog}, checkout ${urls.checkout}, invalidator ${urls.invalidator}`;

    const tl = buildTimeline(points, scrapes, startedAt.getTime(), setupData.marks ?? []);
    const series = (rec: Record<string, [number, number | null][]>, kind?: "bar", stack?: string) =>
      Object.entries(rec).map(([name, data]) => ({ name, data, ...(kind ? { kind } : {}), ...(stack ? { stack } : {}) }));
    const marks = tl.marks;
    const charts: ChartSpec[] = [
      { id: "request-rate", title: "Requests per second per endpoint", yName: "req/s", series: series(tl.requestRate), marks },
      { id: "latency-p50", title: "Latency p50 per endpoint (per second)", yName: "ms", series: series(tl.p50), marks },
      { id: "latency-p99", title: "Latency p99 per endpoint (per second)", yName: "ms", series: series(tl.p99), marks },
      {
        id: "hit-ratio",
        title: "Cache hit ratio per tier (catalog_cache_events_total, per second)",
        yName: "%",
        series: [
          { name: "L1 hits % of reads", data: tl.hitRatio.l1 },
          { name: "Redis hits % of L1 misses", data: tl.hitRatio.redis },
          { name: "Postgres % of reads", data: tl.hitRatio.postgres },
        ],
        marks,
      },
      {
        id: "invalidation-lag",
        title: "Invalidation lag, commit → eviction (histogram bucket bound, per second)",
        yName: "ms",
        y2Name: "evictions/s",
        series: [
          { name: "lag p50", data: tl.invalidationLag.p50 },
          { name: "lag p99", data: tl.invalidationLag.p99 },
          { name: "evictions/s", data: tl.invalidationLag.evictions, kind: "bar", axis: 1 },
        ],
        marks,
      },
    ];
    if (tl.staleReadWindow.length)
      charts.push({
        id: "stale-read-window",
        title: "Stale-read window: admin price change → visible on the catalog",
        yName: "ms",
        series: [{ name: "change visible after", data: tl.staleReadWindow, kind: "scatter" }],
        marks,
      });
    if (Object.keys(tl.checkoutOutcomes).length)
      charts.push({
        id: "checkout-outcomes",
        title: "Checkout outcomes per second",
        yName: "checkouts/s",
        // placed first and green; refusals that are answers (price changed, sold out) amber and grey; the rest red.
        series: series(tl.checkoutOutcomes, "bar", "outcomes")
          .sort((a, b) => (a.name === "placed" ? -1 : b.name === "placed" ? 1 : a.name.localeCompare(b.name)))
          .map((x) => ({ ...x, color: OUTCOME_COLOURS[x.name] ?? (PALETTE[1] as string) })),
        marks,
      });
    charts.push({
      id: "failures",
      title: "Failed requests (5xx / transport) per second",
      yName: "req/s",
      series: [{ name: "failed", data: tl.failures, kind: "bar" }],
      marks,
    });

    const html = renderHtml({
      title: `${o.scenario} — ${runOk ? "PASS" : "FAIL"}`,
      subtitle: `${summary.startedAt}, ${summary.durationS} s, ${generatorText}; command: ${command}; targets: ${targetsText}. ${marks.map((m) => `${m.label} at ${fmt(m.x)} s (dashed line)`).join("; ")}`,
      verdicts,
      tables: [
        htmlTable(
          [
            "requests",
            "req/s",
            "failed",
            "dropped iterations",
            "L1 hit %",
            "Postgres product reads",
            "invalidation lag p50 / p99 ms",
            "change visible p50 / p99 ms",
          ],
          [
            [
              summary.requests,
              summary.requestsPerSec,
              summary.failedRequests,
              summary.droppedIterations,
              fmt((summary.cache.l1HitRatio ?? 0) * 100),
              summary.cache.postgresProductReads,
              `≤ ${fmt(summary.invalidationLagMs.p50, 0)} / ≤ ${fmt(summary.invalidationLagMs.p99, 0)}`,
              summary.adminWriteVisibleMs ? `${fmt(summary.adminWriteVisibleMs.p50)} / ${fmt(summary.adminWriteVisibleMs.p99)}` : "–",
            ],
          ],
        ),
        htmlTable(
          ["endpoint", "requests", "p50 ms", "p99 ms", "max ms"],
          endpoints.map((e) => [e.endpoint, e.requests, fmt(e.p50), fmt(e.p99), fmt(e.max)]),
        ),
        Object.keys(summary.checkoutOutcomes).length
          ? htmlTable(
              ["checkout outcome (service metric)", "count"],
              Object.entries(summary.checkoutOutcomes).map(([k, v]) => [k, v]),
            )
          : "",
      ],
      charts,
    });

    const md = [
      `# ${o.scenario} (${summary.startedAt})`,
      "",
      `Command: \`${command}\` — generator: ${generatorText}; targets: ${targetsText}; everything on one 2-core machine (load generator, services, Postgres, Redis, Kafka, Connect). Charts: [${o.scenario}.html](${o.scenario}.html).`,
      "",
      "| requests | req/s | failed (5xx/transport) | wrong-price orders | oversold (stock < 0) | stale sale reads | consistency: stale keys after run |",
      "|---|---|---|---|---|---|---|",
      `| ${summary.requests} | ${summary.requestsPerSec} | ${summary.failedRequests} | ${summary.wrongPriceOrders} (of ${summary.orderLinesAudited} audited) | ${summary.negativeStockProducts} | ${summary.staleSaleReads} | ${summary.consistency.staleBeyondGrace} of ${summary.consistency.keysChecked} |`,
      "",
      "| endpoint | requests | p50 ms | p99 ms | max ms |",
      "|---|---|---|---|---|",
      ...endpoints.map((e) => `| ${e.endpoint} | ${e.requests} | ${fmt(e.p50)} | ${fmt(e.p99)} | ${fmt(e.max)} |`),
      "",
      `Cache: L1 hit ratio ${fmt((summary.cache.l1HitRatio ?? 0) * 100)} %, Redis hits for ${fmt((summary.cache.redisHitRatioOfL1Misses ?? 0) * 100)} % of L1 misses, ${summary.cache.postgresProductReads} Postgres product reads${summary.dbReadsPerWrite !== null ? ` (${summary.dbReadsPerWrite} per admin write)` : ""}.`,
      `Invalidation lag (commit → eviction, histogram bucket bound): p50 ≤ ${fmt(summary.invalidationLagMs.p50, 0)} ms, p99 ≤ ${fmt(summary.invalidationLagMs.p99, 0)} ms over ${summary.invalidationLagMs.evictions} evictions.`,
      summary.adminWriteVisibleMs
        ? `Admin price change → visible on the catalog (stale-read window): p50 ${fmt(summary.adminWriteVisibleMs.p50)} ms, p99 ${fmt(summary.adminWriteVisibleMs.p99)} ms.`
        : "",
      Object.keys(summary.checkoutOutcomes).length
        ? `Checkout outcomes: ${Object.entries(summary.checkoutOutcomes)
            .map(([k, v]) => `${k} ${v}`)
            .join(", ")}; ${fmt((summary.checkoutOutcomes.placed ?? 0) / summary.durationS, 0)} orders/s over the run.`
        : "",
      summary.droppedIterations ? `Dropped iterations (all VUs busy): ${summary.droppedIterations}.` : "",
      summary.thresholdsFailed.length
        ? `**Thresholds failed:** ${summary.thresholdsFailed.join("; ")}`
        : `All ${thresholds.length} thresholds passed.`,
      "",
    ]
      .filter((l) => l !== "")
      .join("\n");

    const files = {
      json: join(o.outDir, `${o.scenario}.json`),
      md: join(o.outDir, `${o.scenario}.md`),
      html: join(o.outDir, `${o.scenario}.html`),
    };
    await writeFile(files.json, `${JSON.stringify(summary, null, 2)}\n`);
    await writeFile(files.md, `${md}\n`);
    await writeFile(files.html, html);
    // The same charts as separate SVG files, for pages that show images but not HTML (the README).
    const chartDir = join(o.outDir, `${o.scenario}-charts`);
    await rm(chartDir, { recursive: true, force: true });
    await mkdir(chartDir, { recursive: true });
    for (const c of charts) await writeFile(join(chartDir, `${c.id}.svg`), `${renderChart(c)}\n`);
    log(`\n${md}\nReport: ${files.html}`);
    return { ok: runOk, summary, files };
  } finally {
    await rm(rawDir, { recursive: true, force: true });
    await pool.end();
    redis.disconnect();
  }
}
