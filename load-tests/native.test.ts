/**
 * The native load generator keeps k6's meaning of the executors and thresholds, and the k6 entry
 * files export every flow the shared scenario definition names. Against a real HTTP server on
 * loopback (no stubs of undici).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runNative } from "./native.ts";
import { buildTimeline, evaluateThresholds, type Point, readSamples, type Scrape } from "./report.ts";
import { pickGenerator } from "./runner.ts";
import type { Executor, Scenario } from "./scenarios.js";
import { SCENARIO_NAMES, scenario } from "./scenarios.js";

let server: Server;
let base = "";
let delayMs = 0;
const dir = mkdtempSync(join(tmpdir(), "native-runner-"));

beforeAll(async () => {
  server = createServer((req, res) => {
    const answer = () => {
      res.writeHead(req.url === "/fail" ? 503 : 200, { "content-type": "application/json" });
      res.end(JSON.stringify({ ok: true }));
    };
    if (delayMs) setTimeout(answer, delayMs);
    else answer();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function oneFlow(executor: Executor, path = "/ok"): Scenario {
  return {
    name: "t",
    executors: { only: executor },
    thresholds: {},
    urls: { catalog: base, checkout: base, adminToken: "x" },
    flows: {
      *setup() {
        yield* []; // a flow is a generator even when it sends nothing
        return { marks: [] };
      },
      *hit() {
        const res = yield { http: { method: "GET", url: `${base}${path}`, body: null, headers: {}, name: "hit" } };
        yield { check: "200", ok: res?.status === 200 };
      },
    },
  };
}

async function run(s: Scenario): Promise<{ points: Point[]; dropped: number; wallMs: number }> {
  const file = join(dir, `${Math.random()}.ndjson`);
  const t0 = Date.now();
  const r = await runNative(s, {}, file);
  return { points: await readSamples(file), dropped: r.droppedIterations, wallMs: Date.now() - t0 };
}

describe("native executors", () => {
  it("constant-arrival-rate starts rate × duration iterations", async () => {
    delayMs = 0;
    const { points, wallMs } = await run(
      oneFlow({
        executor: "constant-arrival-rate",
        exec: "hit",
        rate: 40,
        timeUnit: "1s",
        duration: "1500ms",
        preAllocatedVUs: 5,
        maxVUs: 20,
      }),
    );
    const reqs = points.filter((p) => p.metric === "http_reqs").length;
    expect(reqs).toBeGreaterThanOrEqual(58);
    expect(reqs).toBeLessThanOrEqual(60);
    expect(wallMs).toBeGreaterThanOrEqual(1_450);
  });

  it("ramping-arrival-rate follows the stages (the integral of a linear ramp)", async () => {
    delayMs = 0;
    // 0 -> 40/s over 1 s (20 iterations), then 40/s for 0.5 s (20 more).
    const { points } = await run(
      oneFlow({
        executor: "ramping-arrival-rate",
        exec: "hit",
        startRate: 0,
        timeUnit: "1s",
        preAllocatedVUs: 5,
        maxVUs: 20,
        stages: [
          { duration: "1s", target: 40 },
          { duration: "500ms", target: 40 },
        ],
      }),
    );
    const reqs = points.filter((p) => p.metric === "http_reqs").length;
    expect(reqs).toBeGreaterThanOrEqual(38);
    expect(reqs).toBeLessThanOrEqual(40);
  });

  it("drops arrivals when every VU is busy instead of queueing them (k6's dropped_iterations)", async () => {
    delayMs = 300;
    const { points, dropped } = await run(
      oneFlow({ executor: "constant-arrival-rate", exec: "hit", rate: 50, timeUnit: "1s", duration: "1s", preAllocatedVUs: 2, maxVUs: 2 }),
    );
    delayMs = 0;
    const reqs = points.filter((p) => p.metric === "http_reqs").length;
    expect(dropped).toBeGreaterThan(30);
    expect(reqs + dropped).toBe(50);
    expect(reqs).toBeLessThanOrEqual(10); // 2 VUs × ~1 s / 300 ms, plus the ones in flight
  });

  it("shared-iterations runs exactly `iterations` across the VUs", async () => {
    delayMs = 0;
    const { points } = await run(oneFlow({ executor: "shared-iterations", exec: "hit", vus: 7, iterations: 53, maxDuration: "30s" }));
    expect(points.filter((p) => p.metric === "http_reqs").length).toBe(53);
    expect(points.filter((p) => p.metric === "checks" && p.value === 1).length).toBe(53);
  });

  it("counts a 5xx in http_req_failed and tags every sample with the request name", async () => {
    const { points } = await run(
      oneFlow({ executor: "shared-iterations", exec: "hit", vus: 2, iterations: 4, maxDuration: "30s" }, "/fail"),
    );
    const failed = points.filter((p) => p.metric === "http_req_failed");
    expect(failed.map((p) => p.value)).toEqual([1, 1, 1, 1]);
    expect(failed.every((p) => p.tags.name === "hit" && p.tags.status === "503")).toBe(true);
  });
});

describe("thresholds (k6 expressions)", () => {
  const pts = (metric: string, values: number[], tags: Record<string, string> = {}): Point[] =>
    values.map((value) => ({ metric, t: 0, value, tags }));
  it("p(N), rate and count with tag selectors", () => {
    const points = [
      ...pts("http_req_duration", [1, 2, 3, 400], { name: "get_product" }),
      ...pts("http_req_duration", [5, 6], { name: "checkout" }),
      ...pts("http_req_failed", [0, 0, 0]),
      ...pts("checkout_outcomes", [1, 1, 1], { code: "placed" }),
      ...pts("checkout_outcomes", [1], { code: "OUT_OF_STOCK" }),
    ];
    const r = evaluateThresholds(
      {
        "http_req_duration{name:get_product}": ["p(99)<250", "p(50)<5"],
        "http_req_duration{name:checkout}": ["max<=6"],
        http_req_failed: ["rate==0"],
        "checkout_outcomes{code:placed}": ["count==3", "count==4"],
      },
      points,
    );
    expect(r.map((x) => [x.expression, x.ok])).toEqual([
      ["http_req_duration{name:get_product}: p(99)<250", false],
      ["http_req_duration{name:get_product}: p(50)<5", true],
      ["http_req_duration{name:checkout}: max<=6", true],
      ["http_req_failed: rate==0", true],
      ["checkout_outcomes{code:placed}: count==3", true],
      ["checkout_outcomes{code:placed}: count==4", false],
    ]);
    expect(evaluateThresholds({ http_req_failed: ["rate==0"] }, [...points, ...pts("http_req_failed", [1])])[0]?.ok).toBe(false);
  });

  it("reads k6's own --out json lines (nanosecond timestamps, offsets, null tags)", async () => {
    const file = join(dir, "k6.ndjson");
    writeFileSync(
      file,
      [
        '{"metric":"http_req_duration","type":"Metric","data":{"name":"http_req_duration","type":"trend","contains":"time","thresholds":[],"submetrics":null}}',
        '{"metric":"http_req_duration","type":"Point","data":{"time":"2026-11-26T07:00:01.123456789+01:00","value":12.5,"tags":{"name":"get_product","status":"200"}}}',
        '{"metric":"vus","type":"Point","data":{"time":"2026-11-26T06:00:01Z","value":3,"tags":null}}',
        '{"metric":"stale_sale_reads","type":"Point","data":{"time":"2026-11-26T06:00:02Z","value":1,"tags":null}}',
      ].join("\n"),
    );
    const points = await readSamples(file);
    expect(points).toEqual([
      { metric: "http_req_duration", t: Date.parse("2026-11-26T06:00:01.123Z"), value: 12.5, tags: { name: "get_product", status: "200" } },
      { metric: "stale_sale_reads", t: Date.parse("2026-11-26T06:00:02Z"), value: 1, tags: {} },
    ]);
  });
});

describe("report timeline", () => {
  it("puts every per-second point at the middle of its interval, so one moment lines up across the charts", () => {
    const t0 = Date.parse("2026-11-26T06:00:00Z");
    const at = (s: number) => t0 + s * 1000;
    const metrics = (l1Hit: number) => new Map([['catalog_cache_events_total{event="l1_hit",service="catalog"}', l1Hit]]);
    const scrape = (s: number, l1Hit: number): Scrape => ({
      t: at(s),
      catalog: metrics(l1Hit),
      checkout: new Map(),
      invalidator: new Map(),
    });
    const points: Point[] = [
      { metric: "http_req_duration", t: at(7.3), value: 5, tags: { name: "get_product" } },
      { metric: "checkout_outcomes", t: at(7.6), value: 1, tags: { code: "placed" } },
    ];
    // A request at 7.3 s, an order at 7.6 s, the L1 hits counted between the scrapes at 7 s and 8 s, the close at 7.5 s.
    const tl = buildTimeline(points, [scrape(7, 0), scrape(8, 10)], t0, [{ label: "sale closed", at: at(7.5) }]);
    expect(tl.requestRate.get_product?.find(([, v]) => v)).toEqual([7.5, 1]);
    expect(tl.checkoutOutcomes.placed?.find(([, v]) => v)).toEqual([7.5, 1]);
    expect(tl.hitRatio.l1).toEqual([[7.5, 100]]);
    expect(tl.marks).toEqual([{ label: "sale closed", x: 7.5 }]);
  });
});

describe("one scenario definition for both drivers", () => {
  it.each(SCENARIO_NAMES)("the k6 entry of %s exports every flow its executors run", (name) => {
    const s = scenario(name, {});
    const src = readFileSync(new URL(`./${name}.js`, import.meta.url), "utf8");
    const exported = new Set([...src.matchAll(/export const (\w+)/g)].map((m) => m[1]));
    expect(src).toContain(`bind("${name}")`);
    for (const e of Object.values(s.executors)) {
      expect(exported.has(e.exec), `${name}.js exports ${e.exec}`).toBe(true);
      expect(typeof s.flows[e.exec]).toBe("function");
    }
    for (const required of ["options", "setup", "handleSummary"]) expect(exported.has(required)).toBe(true);
  });

  it("KEY=value overrides shape the executors", () => {
    const s = scenario("flash-sale", { DURATION_S: "20", PEAK_RATE: "10" });
    expect(s.executors.browsers).toMatchObject({ rate: 50, duration: "20s" });
    expect(s.executors.shoppers).toMatchObject({
      stages: [
        { duration: "5s", target: 10 },
        { duration: "10s", target: 10 },
        { duration: "5s", target: 5 },
      ],
    });
    expect(scenario("checkout-rush", { STOCK: "7" }).thresholds["checkout_outcomes{code:placed}"]).toEqual(["count==7"]);
  });

  it("a bad parameter stops the run before it starts, naming the parameter (no NaN rate that sends nothing and passes)", () => {
    for (const [name, env, key] of [
      ["flash-sale", { PEAK_RATE: "abc" }, "PEAK_RATE"],
      ["flash-sale", { DURATION_S: "-1" }, "DURATION_S"],
      ["flash-sale", { DURATION_S: "0" }, "DURATION_S"],
      ["flash-sale", { DURATION_S: "1.5" }, "DURATION_S"],
      ["flash-sale", { SALE_ENDS_AFTER_S: "soon" }, "SALE_ENDS_AFTER_S"],
      ["stampede", { READ_RATE: "1e3" }, "READ_RATE"],
      ["stampede", { WRITE_EVERY_MS: "0" }, "WRITE_EVERY_MS"],
      ["checkout-rush", { BUYERS: "-5" }, "BUYERS"],
    ] as const)
      expect(() => scenario(name, env), `${name} ${JSON.stringify(env)}`).toThrow(new RegExp(`^${key} must be a whole number`));
    // Only the chosen scenario's parameters are read: another scenario's key does not matter.
    expect(() => scenario("flash-sale", { READ_RATE: "abc" })).not.toThrow();
    expect(() => scenario("nope", {})).toThrow(/unknown scenario 'nope'/);
  });

  it("LOAD_GENERATOR is one of k6, docker, native (a typo silently took the docker path)", () => {
    expect(() => pickGenerator("nativ" as "native")).toThrow(/LOAD_GENERATOR must be k6, docker or native, got 'nativ'/);
    expect(pickGenerator("native")).toBe("native");
  });
});
