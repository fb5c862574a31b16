/**
 * Draws the benchmark results in bench/results/*.json as SVG charts next to them (the README embeds
 * them). Reads only the JSON the benchmarks wrote; run it again after a benchmark:
 *
 *   pnpm exec tsx bench/charts.ts
 *
 * Same renderer as the load-test reports (load-tests/report.ts: ECharts, server-side SVG).
 */
import { readFile, writeFile } from "node:fs/promises";
import { type ChartSpec, renderChart } from "../load-tests/report.ts";

const results = new URL("./results/", import.meta.url);
const read = async <T>(name: string): Promise<T> => JSON.parse(await readFile(new URL(name, results), "utf8")) as T;
const out: string[] = [];
async function write(name: string, spec: ChartSpec): Promise<void> {
  await writeFile(new URL(name, results), `${renderChart(spec)}\n`);
  out.push(`bench/results/${name}`);
}

// Cache tiers against the bare framework (interleaved rounds of one run: the ratios are the figures to trust).
const tiers = await read<{
  measuredAt: string;
  connections: number;
  secondsPerRun: number;
  rounds: number;
  tiers: { name: string; reqPerSec: number; p99Ms: number; ratioToBare: number }[];
  stampedes: { mode: string; readsPerInvalidation: number; reqPerSec: number }[];
}>("cache-tiers.json");
await write("cache-tiers.svg", {
  id: "cache-tiers",
  title: `GET /products/:id, autocannon ${tiers.connections} connections, ${tiers.rounds} × ${tiers.secondsPerRun} s (${tiers.measuredAt.slice(0, 10)})`,
  yName: "req/s",
  y2Name: "p99 ms",
  xCategory: tiers.tiers.map((t) => `${t.name} (${t.ratioToBare}×)`),
  xName: "",
  series: [
    { name: "req/s", kind: "bar", data: tiers.tiers.map((t, i) => [i, t.reqPerSec]) },
    { name: "p99 ms", kind: "scatter", axis: 1, data: tiers.tiers.map((t, i) => [i, t.p99Ms]) },
  ],
  height: 340,
});
await write("cache-stampede.svg", {
  id: "cache-stampede",
  title: "Hot key invalidated every 100 ms under that load: Postgres reads per invalidation",
  yName: "reads / invalidation",
  y2Name: "req/s",
  xCategory: tiers.stampedes.map((s) => (s.mode === "plain" ? "plain cache-aside" : "our protocol (leases, fences)")),
  xName: "",
  series: [
    { name: "Postgres reads per invalidation", kind: "bar", data: tiers.stampedes.map((s, i) => [i, s.readsPerInvalidation]) },
    { name: "req/s", kind: "scatter", axis: 1, data: tiers.stampedes.map((s, i) => [i, s.reqPerSec]) },
  ],
  height: 300,
  width: 700,
});

// Checkout rush per design.
const rush = await read<{
  measuredAt: string;
  buyers: number;
  concurrency: number;
  dbPool: number;
  results: { scenario: string; mode: string; ordersPerSec: number; p50Ms: number; p99Ms: number; dbTransactionsPerOrder: number }[];
}>("checkout-rush.json");
const scenarios = [...new Set(rush.results.map((r) => r.scenario))];
const modes = [...new Set(rush.results.map((r) => r.mode))];
const rushSeries = (field: "ordersPerSec" | "p50Ms" | "dbTransactionsPerOrder") =>
  modes.map((mode) => ({
    name: mode,
    kind: "bar" as const,
    data: scenarios.map((sc, i): [number, number | null] => [
      i,
      rush.results.find((r) => r.scenario === sc && r.mode === mode)?.[field] ?? null,
    ]),
  }));
const rushTitle = `${rush.buyers} buyers, ${rush.concurrency} concurrent, pool ${rush.dbPool} (${rush.measuredAt.slice(0, 10)})`;
await write("checkout-rush.svg", {
  id: "checkout-rush",
  title: `Checkout rush: orders/s — ${rushTitle}`,
  yName: "orders/s",
  xCategory: scenarios,
  xName: "",
  series: rushSeries("ordersPerSec"),
  width: 700,
  height: 300,
});
await write("checkout-rush-p50.svg", {
  id: "checkout-rush-p50",
  title: "Checkout p50 latency per design",
  yName: "ms",
  xCategory: scenarios,
  xName: "",
  series: rushSeries("p50Ms"),
  width: 700,
  height: 300,
});
await write("checkout-rush-tx.svg", {
  id: "checkout-rush-tx",
  title: "Postgres transactions per order placed",
  yName: "tx / order",
  xCategory: scenarios,
  xName: "",
  series: rushSeries("dbTransactionsPerOrder"),
  width: 700,
  height: 300,
});

// Invalidation lag distribution (every sample of the last run, 1 ms bins).
const lag = await read<{ measuredAt: string; updates: number; ms: { p50: number; p99: number; max: number }; samplesMs?: number[] }>(
  "invalidation-lag.json",
);
if (!lag.samplesMs?.length) throw new Error("bench/results/invalidation-lag.json has no samplesMs: re-run bench/invalidation-lag.ts");
const bins = new Map<number, number>();
for (const v of lag.samplesMs) bins.set(Math.floor(v), (bins.get(Math.floor(v)) ?? 0) + 1);
const maxBin = Math.max(...bins.keys());
await write("invalidation-lag.svg", {
  id: "invalidation-lag",
  title: `Invalidation lag, commit → Redis key gone, ${lag.updates} raw-SQL updates (${lag.measuredAt.slice(0, 10)})`,
  yName: "updates",
  xName: "ms (1 ms bins)",
  series: [
    { name: "updates", kind: "bar", data: Array.from({ length: maxBin + 1 }, (_, ms): [number, number] => [ms + 0.5, bins.get(ms) ?? 0]) },
  ],
  marks: [
    { label: `p50 ${lag.ms.p50} ms`, x: lag.ms.p50 },
    { label: `p99 ${lag.ms.p99} ms`, x: lag.ms.p99 },
  ],
  width: 800,
  height: 300,
});

// Checkout through HTTP per design, with pgbench's single-row rate of the same run as the ceiling.
const http = await read<{
  measuredAt: string;
  buyers: number;
  concurrency: number;
  pgbenchSingleRow: { tps: number };
  results: { scenario: string; mode: string; ordersPerSec: number; placedP99Ms: number }[];
}>("checkout-http.json");
const httpScenarios = [...new Set(http.results.map((r) => r.scenario))];
const httpModes = [...new Set(http.results.map((r) => r.mode))];
await write("checkout-http.svg", {
  id: "checkout-http",
  title: `Checkout via HTTP, orders/s: ${http.buyers} buyers, ${http.concurrency} at once; pgbench 1 row ${http.pgbenchSingleRow.tps} tps`,
  yName: "orders/s",
  xCategory: httpScenarios,
  xName: "",
  series: httpModes.map((mode) => ({
    name: mode,
    kind: "bar" as const,
    data: httpScenarios.map((sc, i): [number, number | null] => [
      i,
      http.results.find((r) => r.scenario === sc && r.mode === mode)?.ordersPerSec ?? null,
    ]),
  })),
  width: 900,
  height: 320,
});

// Stale-read window per scenario (Δ = the staleness bound): p50 / p99 / max of how long a read's state had been outdated.
const stale = await read<{
  measuredAt: string;
  deltaMs: number;
  scenarios: { scenario: string; windowP50Ms: number; windowP99Ms: number; windowMaxMs: number; staleBeyondDelta: number }[];
}>("staleness.json");
await write("staleness.svg", {
  id: "staleness",
  title: `Stale-read window per scenario, Δ = ${stale.deltaMs} ms; stale reads beyond Δ: ${stale.scenarios.map((s) => s.staleBeyondDelta).join(", ")} (${stale.measuredAt.slice(0, 10)})`,
  yName: "ms",
  xCategory: stale.scenarios.map((s) => s.scenario.replace(/ \(.*\)$/, "")),
  xName: "",
  series: (["windowP50Ms", "windowP99Ms", "windowMaxMs"] as const).map((f) => ({
    name: f.replace("window", "").replace("Ms", ""),
    kind: "bar" as const,
    data: stale.scenarios.map((s, i): [number, number] => [i, s[f]]),
  })),
  width: 900,
  height: 320,
});

// Invalidation throughput: lag p99 against the achieved write rate, before and after batching.
const thr = await read<{
  measuredAt: string;
  results: Record<string, { rates: { achievedRowsPerS: number; lagP99Ms: number }[]; knee: number }>;
}>("invalidation-throughput.json");
await write("invalidation-throughput.svg", {
  id: "invalidation-throughput",
  title: `Invalidation lag p99 vs raw-SQL rows/s (knee: ${Object.entries(thr.results)
    .map(([k, v]) => `${k} ${v.knee}`)
    .join(", ")} rows/s; ${thr.measuredAt.slice(0, 10)})`,
  yName: "lag p99 ms",
  xName: "rows/s achieved",
  series: Object.entries(thr.results).map(([name, v]) => ({
    name,
    kind: "scatter" as const,
    data: v.rates.map((r): [number, number] => [r.achievedRowsPerS, r.lagP99Ms]),
  })),
  width: 800,
  height: 300,
});

// A sale boundary of 2,000 products: throughput around it relative to each run's own median.
const boundaryRuns = await Promise.all(
  ["sale-boundary-before.json", "sale-boundary-after.json"].map((f) =>
    read<{ label: string; products: number; buckets: { fromBoundaryMs: number; reqPerSec: number }[] }>(f),
  ),
);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 1;
await write("sale-boundary.svg", {
  id: "sale-boundary",
  title: `${boundaryRuns[0]?.products ?? ""} products crossing a sale boundary at 0 ms: req/s ÷ the run's median`,
  yName: "× median",
  xName: "ms from the boundary",
  series: boundaryRuns.map((r) => {
    const m = median(r.buckets.map((b) => b.reqPerSec));
    return { name: r.label, kind: "line" as const, data: r.buckets.map((b): [number, number] => [b.fromBoundaryMs, b.reqPerSec / m]) };
  }),
  marks: [{ label: "boundary", x: 0 }],
  xMin: Math.min(...boundaryRuns.flatMap((r) => r.buckets.map((b) => b.fromBoundaryMs))),
  width: 800,
  height: 300,
});

// Peers side by side: hit throughput and Postgres reads per write of a hot key.
const peers = await read<{ measuredAt: string; rows: { name: string; hitReqPerSec: number; invalidation: { readsPerWrite: number } }[] }>(
  "peers.json",
);
await write("peers.svg", {
  id: "peers",
  title: `Peers: hit req/s and Postgres reads per write of a hot key, 2 processes (${peers.measuredAt.slice(0, 10)})`,
  yName: "hit req/s",
  y2Name: "reads / write",
  xCategory: peers.rows.map((r) => r.name),
  xName: "",
  series: [
    { name: "hit req/s", kind: "bar", data: peers.rows.map((r, i): [number, number] => [i, r.hitReqPerSec]) },
    {
      name: "Postgres reads per write",
      kind: "scatter",
      axis: 1,
      data: peers.rows.map((r, i): [number, number] => [i, r.invalidation.readsPerWrite]),
    },
  ],
  width: 700,
  height: 300,
});
console.log(out.join("\n"));
