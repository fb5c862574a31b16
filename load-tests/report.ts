/**
 * Turns one load-test run into numbers and pictures: reads the samples (k6's `--out json` format,
 * written by k6 or by load-tests/native.ts), evaluates the scenario's thresholds, builds per-second
 * series from the samples and from the services' /metrics scraped every second during the run, and
 * renders a self-contained HTML report whose charts are SVG rendered server-side by ECharts (no
 * script, no network: the file works offline and in any browser).
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import * as echarts from "echarts";

export interface Point {
  metric: string;
  t: number;
  value: number;
  tags: Record<string, string>;
}

/** The metrics the report and the thresholds use; k6's other built-ins (http_req_blocked, …) are skipped. */
const KEPT = new Set([
  "http_reqs",
  "http_req_duration",
  "http_req_failed",
  "checks",
  "dropped_iterations",
  "stale_sale_reads",
  "checkout_outcomes",
  "admin_write_visible_ms",
  "admin_writes",
]);

export async function readSamples(path: string): Promise<Point[]> {
  const points: Point[] = [];
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    if (!line.startsWith('{"type":"Point"') && !line.includes('"type":"Point"')) continue;
    const p = JSON.parse(line) as { metric: string; data: { time: string; value: number; tags?: Record<string, string> | null } };
    if (!KEPT.has(p.metric)) continue;
    points.push({ metric: p.metric, t: Date.parse(p.data.time), value: p.data.value, tags: p.data.tags ?? {} });
  }
  return points;
}

export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (rank - lo);
}

/** `metric{tag:value,…}` → the points it selects. */
function select(points: Point[], selector: string): Point[] {
  const m = /^([a-z_]+)(?:\{(.*)\})?$/.exec(selector);
  if (!m) throw new Error(`bad threshold selector '${selector}'`);
  const filters = (m[2] ?? "")
    .split(",")
    .filter(Boolean)
    .map((f) => f.split(":", 2) as [string, string]);
  return points.filter((p) => p.metric === m[1] && filters.every(([k, v]) => p.tags[k] === v));
}

/** k6 threshold expressions over the samples: `p(N)`, `avg`, `max`, `min`, `count`, `rate` with <, <=, >, >=, ==, !=. */
export function evaluateThresholds(
  thresholds: Record<string, string[]>,
  points: Point[],
): { expression: string; value: number | null; ok: boolean }[] {
  const out: { expression: string; value: number | null; ok: boolean }[] = [];
  for (const [selector, exprs] of Object.entries(thresholds)) {
    const values = select(points, selector).map((p) => p.value);
    for (const expr of exprs) {
      const m = /^\s*(p\((\d+(?:\.\d+)?)\)|avg|max|min|count|rate)\s*(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$/.exec(expr);
      if (!m) throw new Error(`unsupported threshold '${expr}'`);
      const agg = m[1] as string;
      let value: number | null;
      if (agg.startsWith("p(")) value = percentile(values, Number(m[2]));
      else if (agg === "avg") value = values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
      else if (agg === "max") value = values.length ? Math.max(...values) : null;
      else if (agg === "min") value = values.length ? Math.min(...values) : null;
      else if (agg === "count") value = values.reduce((a, b) => a + b, 0);
      else value = values.length ? values.filter((v) => v !== 0).length / values.length : 0;
      const limit = Number(m[4]);
      const cmp = {
        "<": (a: number) => a < limit,
        "<=": (a: number) => a <= limit,
        ">": (a: number) => a > limit,
        ">=": (a: number) => a >= limit,
        "==": (a: number) => a === limit,
        "!=": (a: number) => a !== limit,
      };
      // A percentile of no samples passes, as in k6 (nothing measured, nothing violated).
      const ok = value === null ? true : cmp[m[3] as keyof typeof cmp](value);
      out.push({ expression: `${selector}: ${expr}`, value, ok });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Scrapes of the services' /metrics during the run.

export type MetricMap = Map<string, number>;
export interface Scrape {
  t: number;
  catalog: MetricMap;
  checkout: MetricMap;
  invalidator: MetricMap;
}

export function parseExposition(text: string): MetricMap {
  const m: MetricMap = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

const delta = (a: MetricMap, b: MetricMap, key: string) => (b.get(key) ?? 0) - (a.get(key) ?? 0);

/** Sum over the series of `name` that carry label="value" (label order does not matter). */
export function seriesDelta(a: MetricMap, b: MetricMap, name: string, label: string, value: string): number {
  let sum = 0;
  for (const key of b.keys()) if (key.startsWith(`${name}{`) && key.includes(`${label}="${value}"`)) sum += delta(a, b, key);
  return sum;
}

/** Label values of `label` seen on `name`. */
function labelValues(m: MetricMap, name: string, label: string): string[] {
  const out = new Set<string>();
  for (const key of m.keys()) {
    if (!key.startsWith(`${name}{`)) continue;
    const v = new RegExp(`${label}="([^"]*)"`).exec(key)?.[1];
    if (v !== undefined) out.add(v);
  }
  return [...out].sort();
}

/** p-th percentile of a Prometheus histogram's increase between two scrapes, as the bucket's upper bound in ms. */
export function histogramPercentile(a: MetricMap, b: MetricMap, name: string, p: number): number | null {
  const buckets = [...b.keys()]
    .filter((k) => k.startsWith(`${name}_bucket{`))
    .map((k) => ({ le: /le="([^"]+)"/.exec(k)?.[1] ?? "+Inf", count: delta(a, b, k) }))
    .sort((x, y) => (x.le === "+Inf" ? 1 : y.le === "+Inf" ? -1 : Number(x.le) - Number(y.le)));
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return null;
  const bucket = buckets.find((x) => x.count >= (p / 100) * total);
  return bucket && bucket.le !== "+Inf" ? Number(bucket.le) * 1000 : null;
}

// ---------------------------------------------------------------------------------------------
// Time series.

type XY = [number, number | null];
export interface Timeline {
  /** Seconds since the run started; one bucket per second. */
  requestRate: Record<string, XY[]>;
  p50: Record<string, XY[]>;
  p99: Record<string, XY[]>;
  failures: XY[];
  hitRatio: { l1: XY[]; redis: XY[]; postgres: XY[] };
  invalidationLag: { p50: XY[]; p99: XY[]; evictions: XY[] };
  staleReadWindow: XY[];
  checkoutOutcomes: Record<string, XY[]>;
  marks: { label: string; x: number }[];
}

export function buildTimeline(points: Point[], scrapes: Scrape[], startMs: number, marks: { label: string; at: number }[]): Timeline {
  const sec = (t: number) => Math.floor((t - startMs) / 1000);
  const last = Math.max(0, ...points.map((p) => sec(p.t)), ...scrapes.map((s) => sec(s.t)));
  const durations = new Map<string, number[][]>();
  const failures = new Array<number>(last + 1).fill(0);
  const outcomes = new Map<string, number[]>();
  const staleReadWindow: XY[] = [];
  for (const p of points) {
    const s = sec(p.t);
    if (s < 0) continue; // setup requests
    if (p.metric === "http_req_duration") {
      const name = p.tags.name ?? "other";
      if (!durations.has(name))
        durations.set(
          name,
          Array.from({ length: last + 1 }, () => []),
        );
      durations.get(name)?.[s]?.push(p.value);
    } else if (p.metric === "http_req_failed" && p.value) failures[s] = (failures[s] ?? 0) + 1;
    else if (p.metric === "checkout_outcomes") {
      const code = p.tags.code ?? "?";
      if (!outcomes.has(code)) outcomes.set(code, new Array<number>(last + 1).fill(0));
      const arr = outcomes.get(code) as number[];
      arr[s] = (arr[s] ?? 0) + p.value;
    } else if (p.metric === "admin_write_visible_ms") staleReadWindow.push([(p.t - startMs) / 1000, p.value]);
  }
  const requestRate: Record<string, XY[]> = {};
  const p50: Record<string, XY[]> = {};
  const p99: Record<string, XY[]> = {};
  // Every point sits at the middle of the interval it summarises: second i of the samples at i + 0.5,
  // the delta between two scrapes at the midpoint of their times. So a moment (the sale's close, a
  // dip in the hit ratio, a burst of requests) lines up across the charts.
  const mid = (i: number) => i + 0.5;
  for (const [name, perSec] of [...durations.entries()].sort()) {
    requestRate[name] = perSec.map((v, i) => [mid(i), v.length]);
    p50[name] = perSec.map((v, i) => [mid(i), percentile(v, 50)]);
    p99[name] = perSec.map((v, i) => [mid(i), percentile(v, 99)]);
  }
  const hitRatio: Timeline["hitRatio"] = { l1: [], redis: [], postgres: [] };
  const invalidationLag: Timeline["invalidationLag"] = { p50: [], p99: [], evictions: [] };
  for (let i = 1; i < scrapes.length; i++) {
    const a = scrapes[i - 1] as Scrape;
    const b = scrapes[i] as Scrape;
    const x = ((a.t + b.t) / 2 - startMs) / 1000;
    const ev = (e: string) => seriesDelta(a.catalog, b.catalog, "catalog_cache_events_total", "event", e);
    const l1Hit = ev("l1_hit");
    const l1Miss = ev("l1_miss");
    const reads = l1Hit + l1Miss;
    hitRatio.l1.push([x, reads ? (100 * l1Hit) / reads : null]);
    hitRatio.redis.push([x, l1Miss ? (100 * ev("hit")) / l1Miss : null]);
    hitRatio.postgres.push([x, reads ? (100 * (ev("miss") + ev("bypass") + ev("lease_wait_timeout"))) / reads : null]);
    invalidationLag.p50.push([x, histogramPercentile(a.invalidator, b.invalidator, "invalidation_lag_seconds", 50)]);
    invalidationLag.p99.push([x, histogramPercentile(a.invalidator, b.invalidator, "invalidation_lag_seconds", 99)]);
    invalidationLag.evictions.push([x, seriesDelta(a.invalidator, b.invalidator, "invalidator_events_total", "outcome", "evicted")]);
  }
  const checkoutOutcomes: Record<string, XY[]> = {};
  for (const [code, arr] of [...outcomes.entries()].sort()) checkoutOutcomes[code] = arr.map((v, i) => [mid(i), v]);
  return {
    requestRate,
    p50,
    p99,
    failures: failures.map((v, i) => [mid(i), v]),
    hitRatio,
    invalidationLag,
    staleReadWindow,
    checkoutOutcomes,
    marks: marks.map((m) => ({ label: m.label, x: (m.at - startMs) / 1000 })),
  };
}

/** Service-side checkout outcome totals over the run (all label values seen). */
export function outcomeTotals(before: MetricMap, after: MetricMap): Record<string, number> {
  return Object.fromEntries(
    labelValues(after, "checkout_outcomes_total", "outcome")
      .map((o) => [o, seriesDelta(before, after, "checkout_outcomes_total", "outcome", o)] as const)
      .filter(([, n]) => n > 0),
  );
}

// ---------------------------------------------------------------------------------------------
// HTML.

export interface ChartSeries {
  name: string;
  data: XY[];
  kind?: "line" | "bar" | "scatter";
  stack?: string;
  /** 1 = the right-hand axis (another unit), named by ChartSpec.y2Name. */
  axis?: 0 | 1;
  /** A fixed colour (one of PALETTE), e.g. green for placed orders; otherwise the palette in order. */
  color?: string;
}
export interface ChartSpec {
  id: string;
  title: string;
  yName: string;
  xName?: string;
  series: ChartSeries[];
  marks?: { label: string; x: number }[];
  yLog?: boolean;
  y2Name?: string;
  xCategory?: string[];
  /** The value x axis' lower end (default 0: time since a run's start). */
  xMin?: number;
  width?: number;
  height?: number;
}

export const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563", "#65a30d", "#9333ea"];

/** One chart as an SVG string (ECharts' server-side renderer: no DOM, no script in the output). */
export function renderChart(spec: ChartSpec): string {
  const chart = echarts.init(null, null, { renderer: "svg", ssr: true, width: spec.width ?? 900, height: spec.height ?? 320 });
  try {
    const markLine = spec.marks?.length
      ? {
          symbol: "none",
          silent: true,
          lineStyle: { color: "#111827", type: "dashed", width: 1.5 },
          label: { formatter: "{b}", position: "insideEndTop", color: "#111827" },
          data: spec.marks.map((m) => ({ name: m.label, xAxis: m.x })),
        }
      : undefined;
    chart.setOption({
      animation: false,
      // Opaque, so the SVG files read well on dark pages too (the README on a dark theme).
      backgroundColor: "#ffffff",
      color: PALETTE,
      title: { text: spec.title, left: 8, top: 4, textStyle: { fontSize: 14 } },
      legend: { top: 28, type: "plain", data: spec.series.map((s) => s.name) },
      grid: { left: 64, right: spec.y2Name ? 64 : 24, top: 70, bottom: 44 },
      xAxis: spec.xCategory
        ? {
            type: "category",
            data: spec.xCategory,
            name: spec.xName ?? "",
            nameLocation: "middle",
            nameGap: 28,
            // Every category named, wrapped to its slot.
            axisLabel: { interval: 0, width: Math.floor(((spec.width ?? 900) - 120) / spec.xCategory.length) - 8, overflow: "break" },
          }
        : { type: "value", name: spec.xName ?? "seconds since start", nameLocation: "middle", nameGap: 28, min: spec.xMin ?? 0 },
      yAxis: [
        { type: spec.yLog ? "log" : "value", name: spec.yName, nameTextStyle: { align: "left" } },
        ...(spec.y2Name ? [{ type: "value", name: spec.y2Name, nameTextStyle: { align: "right" }, splitLine: { show: false } }] : []),
      ],
      series: spec.series.map((s, i) => ({
        name: s.name,
        type: s.kind ?? "line",
        data: s.data,
        stack: s.stack,
        yAxisIndex: s.axis ?? 0,
        ...(s.color ? { itemStyle: { color: s.color }, lineStyle: { width: 1.6, color: s.color } } : {}),
        showSymbol: s.kind === "scatter",
        symbolSize: 6,
        connectNulls: false,
        lineStyle: { width: 1.6 },
        ...(i === 0 && markLine ? { markLine } : {}),
      })),
    });
    return chart.renderToSVGString();
  } finally {
    chart.dispose();
  }
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c] as string);
}

export interface Verdict {
  label: string;
  ok: boolean;
  detail: string;
}

export function renderHtml(opts: { title: string; subtitle: string; verdicts: Verdict[]; tables: string[]; charts: ChartSpec[] }): string {
  const figures = opts.charts
    .map((c) => `<figure data-chart="${esc(c.id)}" data-series="${esc(c.series.map((s) => s.name).join("|"))}">${renderChart(c)}</figure>`)
    .join("\n");
  const verdicts = opts.verdicts
    .map(
      (v) =>
        `<li class="${v.ok ? "ok" : "fail"}" data-verdict="${esc(v.label)}"><b>${v.ok ? "PASS" : "FAIL"}</b> ${esc(v.label)} <span>${esc(v.detail)}</span></li>`,
    )
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(opts.title)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#111827;background:#fff;max-width:960px}
h1{font-size:20px;margin:0 0 4px}.sub{color:#4b5563;margin:0 0 16px}
ul.verdicts{list-style:none;padding:0;display:grid;grid-template-columns:1fr 1fr;gap:6px}
ul.verdicts li{padding:6px 10px;border-radius:6px}li.ok{background:#dcfce7}li.fail{background:#fee2e2}
li span{color:#374151}figure{margin:12px 0;border:1px solid #e5e7eb;border-radius:6px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #e5e7eb;padding:3px 8px;text-align:right}th{background:#f3f4f6}
</style></head><body>
<h1>${esc(opts.title)}</h1><p class="sub">${esc(opts.subtitle)}</p>
<ul class="verdicts">${verdicts}</ul>
${opts.tables.join("\n")}
${figures}
</body></html>
`;
}

export function htmlTable(head: string[], rows: (string | number)[][]): string {
  return `<table><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${esc(String(c))}</td>`).join("")}</tr>`)
    .join("")}</table>`;
}
