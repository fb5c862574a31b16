/**
 * Load-test report and observability, end to end, on the test stack (its own database, Redis db,
 * topics; service processes this test starts on free ports, never those of scripts/up):
 * 1. a short flash sale with the native load generator (load-tests/runner.ts, the same code as
 *    `load-tests/run`) writes an HTML report; headless Chromium (Debian's package) opens it and the
 *    charts must have rendered: every expected chart and series is there, its lines are drawn, and
 *    the screenshot is not blank;
 * 2. Prometheus (Debian's package, started by infra/observability/prometheus-native on a free port)
 *    scrapes those processes: every target is up and every query of the Grafana dashboard
 *    (infra/observability/grafana/dashboards/flashsale.json) returns data.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pgPool, type ServiceProcess, spawnService, TEST_ENV, waitFor } from "@flashsale/testkit";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PALETTE } from "../load-tests/report.ts";
import { productReads, type RunResult, runLoadTest } from "../load-tests/runner.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const CHROMIUM = "/usr/bin/chromium";
const isRoot = process.getuid?.() === 0;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function hasCommand(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

// CI runs as root and scripts/bootstrap.sh installs both packages, so there these never skip; a
// developer without root and without the packages gets a skip that says what to install.
const skipChromium = !existsSync(CHROMIUM) && !isRoot;
const skipPrometheus = !hasCommand("prometheus") && !isRoot;
if (skipChromium) console.warn("[observability] SKIP report rendering: /usr/bin/chromium missing (apt-get install chromium, as root)");
if (skipPrometheus) console.warn("[observability] SKIP Prometheus checks: prometheus missing (apt-get install prometheus, as root)");

const services: ServiceProcess[] = [];
const ports = { catalog: 0, checkout: 0, invalidator: 0, prometheus: 0 };
const work = mkdtempSync(join(tmpdir(), "flashsale-observability-"));
const promEnv = () => ({
  ...process.env,
  PROMETHEUS_PORT: String(ports.prometheus),
  PROMETHEUS_DIR: join(work, "prometheus"),
  SCRAPE_INTERVAL: "1s",
  CATALOG_PORT: String(ports.catalog),
  CHECKOUT_PORT: String(ports.checkout),
  INVALIDATOR_PORT: String(ports.invalidator),
});
let run: RunResult;

beforeAll(async () => {
  ports.invalidator = await freePort();
  ports.catalog = await freePort();
  ports.checkout = await freePort();
  ports.prometheus = await freePort();
  // Its own consumer group, starting at the end: it is ready (a group member) before any load.
  services.push(
    await spawnService("invalidator", ports.invalidator, {
      KAFKA_GROUP_ID: `observability-${process.pid}-${Date.now()}`,
      KAFKA_NEW_GROUP_START: "latest",
      CONSISTENCY_CHECK_INTERVAL_MS: "2000",
    }),
  );
  services.push(await spawnService("catalog", ports.catalog, {}));
  services.push(await spawnService("checkout", ports.checkout, { CHECKOUT_RATE_LIMIT_MAX: "1000" }));
  if (!skipPrometheus) {
    const started = spawnSync("bash", [join(ROOT, "infra/observability/prometheus-native"), "start"], {
      env: promEnv(),
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(started.status, `${started.stdout}${started.stderr}`).toBe(0);
  }
  run = await runLoadTest({
    scenario: "flash-sale",
    env: { DURATION_S: "8", PEAK_RATE: "8", SALE_ENDS_AFTER_S: "4" },
    outDir: join(work, "results"),
    generator: "native",
    catalogUrl: `http://127.0.0.1:${ports.catalog}`,
    checkoutUrl: `http://127.0.0.1:${ports.checkout}`,
    invalidatorUrl: `http://127.0.0.1:${ports.invalidator}`,
    databaseUrl: TEST_ENV.databaseUrl,
    redisUrl: TEST_ENV.redisUrl,
    scope: "run",
    log: () => {},
  });
}, 180_000);

afterAll(async () => {
  if (!skipPrometheus)
    spawnSync("bash", [join(ROOT, "infra/observability/prometheus-native"), "stop"], { env: promEnv(), timeout: 30_000 });
  await Promise.all(services.map((s) => s.stop()));
  rmSync(work, { recursive: true, force: true });
});

describe("load-test run", () => {
  it("writes json, md and html; the order audit, oversell check and consistency checker pass", () => {
    const s = run.summary as {
      requests: number;
      failedRequests: number;
      wrongPriceOrders: number;
      negativeStockProducts: number;
      consistency: { staleBeyondGrace: number };
    };
    expect(s.requests).toBeGreaterThan(100);
    expect(s.failedRequests).toBe(0);
    expect(s.wrongPriceOrders).toBe(0);
    expect(s.negativeStockProducts).toBe(0);
    expect(s.consistency.staleBeyondGrace).toBe(0);
    for (const f of Object.values(run.files)) expect(existsSync(f), f).toBe(true);
    for (const id of ["request-rate", "latency-p99", "hit-ratio", "invalidation-lag", "checkout-outcomes"])
      expect(readFileSync(join(work, "results", "flash-sale-charts", `${id}.svg`), "utf8")).toMatch(/^<svg /);
    const html = readFileSync(run.files.html, "utf8");
    // Self-contained: no script, no stylesheet, no reference outside the file (only #fragment ids).
    expect(html).not.toMatch(/<script|<link|<img|\b(src|href)="(?!#)|url\((?!#)/i);
  });

  it("a service that stops answering during the run: the report is still written, fails, and names it", async () => {
    // A TCP proxy in front of this test's checkout, closed mid-run (the checkout itself keeps running).
    const sockets = new Set<Socket>();
    const proxy = createServer((c) => {
      const u = connect(ports.checkout, "127.0.0.1");
      for (const x of [c, u]) {
        sockets.add(x);
        x.on("error", () => {});
        x.on("close", () => sockets.delete(x));
      }
      c.pipe(u).pipe(c);
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    const proxyPort = (proxy.address() as { port: number }).port;
    const down = setTimeout(() => {
      proxy.close();
      for (const x of sockets) x.destroy();
    }, 2_000);
    const r = await runLoadTest({
      scenario: "flash-sale",
      env: { DURATION_S: "4", PEAK_RATE: "3" },
      outDir: join(work, "down"),
      generator: "native",
      catalogUrl: `http://127.0.0.1:${ports.catalog}`,
      checkoutUrl: `http://127.0.0.1:${proxyPort}`,
      invalidatorUrl: `http://127.0.0.1:${ports.invalidator}`,
      databaseUrl: TEST_ENV.databaseUrl,
      redisUrl: TEST_ENV.redisUrl,
      scope: "run",
      log: () => {},
    }).finally(() => clearTimeout(down));
    expect(r.ok).toBe(false);
    expect((r.summary as { failedRequests: number }).failedRequests).toBeGreaterThan(0);
    const html = readFileSync(r.files.html, "utf8");
    expect(html).toMatch(/<li class="fail" data-verdict="services up at the end"><b>FAIL<\/b>[^<]*<span>checkout did not answer/);
    // Its raw samples are gone as after any run (nothing left under load-tests/results/.raw).
    const raw = join(ROOT, "load-tests/results/.raw");
    expect(existsSync(raw) ? readdirSync(raw).filter((d) => d.startsWith(`flash-sale-${process.pid}-`)) : []).toEqual([]);
  }, 120_000);

  it("counts the catalog's Postgres reads in the database under load only (pg_stat_statements spans the cluster)", async () => {
    const test = pgPool(TEST_ENV.databaseUrl, 1);
    const scratch = pgPool(TEST_ENV.scratchDatabaseUrl, 1);
    try {
      // The catalog's read statement, by its text, 50 times in another database of the same cluster
      // (the scratch database: no catalog reads there; tracking is cluster-wide).
      for (let i = 0; i < 50; i++)
        await scratch.query(
          "SELECT p.id FROM (SELECT 1::bigint AS id) p WHERE p.id = $1 -- product_next_price_boundary(p, now()) AS valid_until",
          [i],
        );
      const sums = await test.query<{ here: string; cluster: string }>(
        `SELECT coalesce(sum(calls) FILTER (WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())), 0) AS here,
                coalesce(sum(calls), 0) AS cluster
           FROM pg_stat_statements
          WHERE query LIKE '%product_next_price_boundary(p, now()) AS valid_until%' AND query LIKE '%WHERE p.id = $1%'`,
      );
      const here = Number(sums.rows[0]?.here);
      const cluster = Number(sums.rows[0]?.cluster);
      expect(cluster - here).toBeGreaterThanOrEqual(50);
      // The test database's own reads (other runs on the test stack may add a few meanwhile), not the cluster's.
      const counted = await productReads(test);
      expect(counted).toBeGreaterThanOrEqual(here);
      expect(counted).toBeLessThan(cluster);
    } finally {
      await Promise.all([test.end(), scratch.end()]);
    }
  });

  it.skipIf(skipChromium)("renders its charts in headless Chromium", async () => {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
      await page.goto(`file://${run.files.html}`);
      const charts = await page.$$eval(
        "figure[data-chart]",
        (figs, palette) =>
          figs.map((f) => {
            const svg = f.querySelector("svg");
            const box = svg?.getBoundingClientRect() ?? new DOMRect();
            const texts = [...f.querySelectorAll("text")].map((t) => t.textContent ?? "");
            // Drawn data: shapes in a series colour (lines, bars, points) laid out with a non-zero
            // box below the legend (the legend's own swatches sit above y+62).
            const drawn = new Set<string>();
            for (const el of f.querySelectorAll("path")) {
              const colour = (el.getAttribute("stroke") ?? "") + (el.getAttribute("fill") ?? "");
              const hit = palette.find((c) => colour.includes(c));
              const r = el.getBoundingClientRect();
              if (hit && r.top > box.top + 62 && (r.width > 0.5 || r.height > 0.5)) drawn.add(hit);
            }
            return { id: f.getAttribute("data-chart"), width: box.width, height: box.height, texts, drawnSeries: drawn.size };
          }),
        PALETTE,
      );
      const byId = new Map(charts.map((c) => [c.id, c]));
      for (const id of [
        "request-rate",
        "latency-p50",
        "latency-p99",
        "hit-ratio",
        "invalidation-lag",
        "stale-read-window",
        "checkout-outcomes",
      ]) {
        const c = byId.get(id);
        expect(c, `chart ${id}`).toBeDefined();
        expect(c?.width).toBeGreaterThan(300);
        expect(c?.height).toBeGreaterThan(150);
        // The sale's close is marked on every chart over time.
        expect(c?.texts, `${id}: sale close marked`).toContain("sale closed");
      }
      const legend = (id: string) => byId.get(id)?.texts ?? [];
      for (const series of ["get_product", "checkout", "add_item", "create_cart"]) {
        expect(legend("request-rate")).toContain(series);
        expect(legend("latency-p99")).toContain(series);
      }
      expect(legend("hit-ratio")).toEqual(
        expect.arrayContaining(["L1 hits % of reads", "Redis hits % of L1 misses", "Postgres % of reads"]),
      );
      expect(legend("invalidation-lag")).toEqual(expect.arrayContaining(["lag p50", "lag p99", "evictions/s"]));
      expect(legend("checkout-outcomes")).toContain("placed");
      // Every endpoint's request-rate line, all three tiers' ratios, the outcome bars and the stale-read points are drawn.
      expect(byId.get("request-rate")?.drawnSeries, "request-rate lines").toBeGreaterThanOrEqual(4);
      expect(byId.get("latency-p99")?.drawnSeries, "latency lines").toBeGreaterThanOrEqual(4);
      expect(byId.get("hit-ratio")?.drawnSeries, "hit-ratio lines").toBe(3);
      expect(byId.get("checkout-outcomes")?.drawnSeries, "checkout bars").toBeGreaterThanOrEqual(1);
      expect(byId.get("stale-read-window")?.drawnSeries, "stale-read points").toBe(1);
      const verdicts = await page.$$eval("[data-verdict]", (els) => els.map((e) => e.getAttribute("data-verdict")));
      expect(verdicts).toEqual(expect.arrayContaining(["order audit: price at commit", "consistency checker", "no oversell"]));

      // Not blank: decode the screenshot in the page and count distinct colours and non-white pixels.
      const png = await page.screenshot({ fullPage: true });
      const stats = await page.evaluate(async (b64) => {
        const img = new Image();
        img.src = `data:image/png;base64,${b64}`;
        await img.decode();
        const canvas = document.createElement("canvas");
        canvas.width = img.width;
        canvas.height = img.height;
        const ctx = canvas.getContext("2d") as CanvasRenderingContext2D;
        ctx.drawImage(img, 0, 0);
        const data = ctx.getImageData(0, 0, img.width, img.height).data;
        const colours = new Set<number>();
        let nonWhite = 0;
        for (let i = 0; i < data.length; i += 4 * 7) {
          const [r, g, b] = [data[i] as number, data[i + 1] as number, data[i + 2] as number];
          colours.add((r << 16) | (g << 8) | b);
          if (r < 240 || g < 240 || b < 240) nonWhite++;
        }
        return { width: img.width, height: img.height, colours: colours.size, nonWhiteShare: nonWhite / (data.length / (4 * 7)) };
      }, png.toString("base64"));
      expect(stats.height).toBeGreaterThan(1500); // all charts laid out one below the other
      expect(stats.colours).toBeGreaterThan(20);
      expect(stats.nonWhiteShare).toBeGreaterThan(0.03);
    } finally {
      await browser.close();
    }
  });
});

describe.skipIf(skipPrometheus)("Prometheus + the Grafana dashboard, natively", () => {
  const prom = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${ports.prometheus}${path}`, { signal: AbortSignal.timeout(5_000) });
    return (await res.json()) as {
      status: string;
      data: { result?: unknown[]; activeTargets?: { labels: { job: string }; health: string }[] };
    };
  };

  it("scrapes every target", async () => {
    const targets = await waitFor(
      async () => {
        const t = (await prom("/api/v1/targets")).data.activeTargets ?? [];
        return t.length === 3 && t.every((x) => x.health === "up") ? t : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250, what: "all Prometheus targets up" },
    );
    expect(targets.map((t) => t.labels.job).sort()).toEqual(["catalog", "checkout", "invalidator"]);
  });

  it("answers every query of the dashboard with data", async () => {
    const dashboard = JSON.parse(readFileSync(join(ROOT, "infra/observability/grafana/dashboards/flashsale.json"), "utf8")) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    const queries = dashboard.panels.flatMap((p) =>
      p.targets.map((t) => ({ panel: p.title, expr: t.expr.replaceAll("$__rate_interval", "1m") })),
    );
    expect(queries.length).toBeGreaterThanOrEqual(10);
    const empty: string[] = [];
    await waitFor(
      async () => {
        empty.length = 0;
        for (const q of queries) {
          const r = await prom(`/api/v1/query?query=${encodeURIComponent(q.expr)}`);
          if (r.status !== "success" || (r.data.result?.length ?? 0) === 0) empty.push(`${q.panel}: ${q.expr}`);
        }
        return empty.length === 0 ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 1_000, what: "every dashboard query returns data" },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; empty: ${empty.join(" | ")}`);
    });
  });
});
