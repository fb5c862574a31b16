/**
 * The native load generator: runs a scenario of load-tests/scenarios.js in Node (undici) where no
 * k6 is installed. It implements the four k6 executors the scenarios use (constant- and
 * ramping-arrival-rate, constant-vus, shared-iterations) with k6's meaning of their options, drives
 * the same flow generators as load-tests/k6-driver.js, and writes every sample in the format of
 * k6's `--out json` (one `{"type":"Point","metric",…,"data":{time,value,tags}}` per line), so
 * load-tests/report.ts reads both generators' output with one parser.
 */
import { createWriteStream, type WriteStream } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, request } from "undici";
import type { Executor, FlowContext, HttpResult, Op, Scenario, SetupData } from "./scenarios.js";

/** Per request: the service answers or the request counts as failed (k6's default is 60 s; we are on loopback). */
const REQUEST_TIMEOUT_MS = 10_000;

export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s.trim());
  if (!m) throw new Error(`bad duration '${s}'`);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
  return Number(m[1]) * unit;
}

class Samples {
  private readonly out: WriteStream;
  constructor(path: string) {
    this.out = createWriteStream(path);
  }
  add(metric: string, value: number, tags: Record<string, string>, time = Date.now()): void {
    this.out.write(`${JSON.stringify({ type: "Point", metric, data: { time: new Date(time).toISOString(), value, tags } })}\n`);
  }
  close(): Promise<void> {
    return new Promise((resolve, reject) => this.out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
}

export interface NativeResult {
  setupData: SetupData;
  droppedIterations: number;
  iterationErrors: number;
  firstErrors: string[];
}

/** Runs `s` and writes its samples to `samplesPath`. Bounded: every executor has a duration or an iteration count. */
export async function runNative(s: Scenario, env: Record<string, string | undefined>, samplesPath: string): Promise<NativeResult> {
  const samples = new Samples(samplesPath);
  const maxConnections = Object.values(s.executors).reduce((n, e) => n + ("maxVUs" in e ? e.maxVUs : e.vus), 0);
  const agent = new Agent({ connections: maxConnections, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS });
  let droppedIterations = 0;
  let iterationErrors = 0;
  const firstErrors: string[] = [];

  async function http(op: Extract<Op, { http: unknown }>["http"], tags: Record<string, string>): Promise<HttpResult> {
    const t0 = performance.now();
    let status = 0;
    let body = "";
    try {
      const res = await request(op.url, {
        method: op.method as "GET",
        headers: op.headers,
        body: op.body ?? undefined,
        dispatcher: agent,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      status = res.statusCode;
      body = await res.body.text();
    } catch {
      status = 0; // transport error or timeout: a failed request, as in k6
    }
    const ms = performance.now() - t0;
    const t = { ...tags, name: op.name, method: op.method, status: String(status) };
    samples.add("http_reqs", 1, t);
    samples.add("http_req_duration", ms, t);
    samples.add("http_req_failed", status === 0 || status >= 500 ? 1 : 0, t);
    return { status, body };
  }

  async function drive(gen: Generator<Op, unknown, HttpResult | undefined>, tags: Record<string, string>): Promise<unknown> {
    let step = gen.next();
    while (!step.done) {
      const op = step.value;
      let result: HttpResult | undefined;
      if ("http" in op) result = await http(op.http, tags);
      else if ("sleep" in op) await sleep(op.sleep * 1000);
      else if ("metric" in op) samples.add(op.metric, op.value, { ...tags, ...(op.tags ?? {}) });
      else if ("check" in op) samples.add("checks", op.ok ? 1 : 0, { ...tags, check: op.check });
      step = gen.next(result);
    }
    return step.value;
  }

  const ctxBase = { env, urls: s.urls };
  const setupFlow = s.flows.setup;
  if (!setupFlow) throw new Error(`scenario ${s.name} has no setup`);
  // Assigned by setup before any executor starts (see the try block at the end).
  let setupData: SetupData = { marks: [] };

  /** One iteration of `exec` as VU `vu`; an exception ends the iteration (k6: "iteration interrupted"). */
  async function iterate(name: string, exec: string, vu: number, iter: number): Promise<void> {
    const flow = s.flows[exec];
    if (!flow) throw new Error(`scenario ${s.name} has no flow '${exec}'`);
    const ctx: FlowContext = { ...ctxBase, data: setupData, vu, iter };
    try {
      await drive(flow(ctx), { scenario: name });
    } catch (err) {
      iterationErrors++;
      if (firstErrors.length < 5) firstErrors.push(`${name}: ${(err as Error).message}`);
    }
  }

  let nextVu = 1;
  async function runExecutor(name: string, e: Executor): Promise<void> {
    const started = performance.now();
    const elapsed = () => performance.now() - started;
    if (e.executor === "constant-vus" || e.executor === "shared-iterations") {
      const durationMs = e.executor === "constant-vus" ? parseDuration(e.duration) : parseDuration(e.maxDuration);
      let remaining = e.executor === "shared-iterations" ? e.iterations : Number.POSITIVE_INFINITY;
      const workers = Array.from({ length: e.vus }, async () => {
        const vu = nextVu++;
        let iter = 0;
        while (remaining > 0 && elapsed() < durationMs) {
          remaining--;
          await iterate(name, e.exec, vu, iter++);
        }
      });
      await Promise.all(workers);
      return;
    }
    // Arrival rate: iteration i starts when the integral of the rate reaches i, on a free VU; with
    // all maxVUs busy it is dropped (k6's dropped_iterations), never queued.
    const unitMs = parseDuration(e.timeUnit);
    const stages =
      e.executor === "constant-arrival-rate"
        ? [{ ms: parseDuration(e.duration), from: e.rate, to: e.rate }]
        : e.stages.map((st, i, all) => ({
            ms: parseDuration(st.duration),
            from: i === 0 ? e.startRate : (all[i - 1]?.target ?? 0),
            to: st.target,
          }));
    const totalMs = stages.reduce((n, st) => n + st.ms, 0);
    /** Iterations due by `t` ms: the integral of the piecewise-linear rate. */
    const due = (t: number): number => {
      let n = 0;
      let t0 = 0;
      for (const st of stages) {
        const dt = Math.min(Math.max(t - t0, 0), st.ms);
        if (dt > 0) {
          const rateAt = st.from + ((st.to - st.from) * dt) / Math.max(st.ms, 1);
          n += ((st.from + rateAt) / 2) * (dt / unitMs);
        }
        t0 += st.ms;
      }
      return n;
    };
    const freeVus: number[] = [];
    let allocated = 0;
    let launched = 0;
    const running = new Set<Promise<void>>();
    // As in k6, the first iteration starts at t=0 and iteration i at the instant the integral reaches i.
    const total = Math.ceil(due(totalMs) - 1e-9);
    while (elapsed() < totalMs) {
      const target = Math.min(Math.floor(due(elapsed())) + 1, total);
      while (launched < target) {
        launched++;
        let vu = freeVus.pop();
        if (vu === undefined && allocated < e.maxVUs) {
          allocated++;
          vu = nextVu++;
        }
        if (vu === undefined) {
          droppedIterations++;
          samples.add("dropped_iterations", 1, { scenario: name });
          continue;
        }
        const myVu = vu;
        const p: Promise<void> = iterate(name, e.exec, myVu, launched).finally(() => {
          freeVus.push(myVu);
          running.delete(p);
        });
        running.add(p);
      }
      await sleep(2);
    }
    await Promise.all(running);
  }

  try {
    setupData = (await drive(setupFlow({ ...ctxBase, data: null, vu: 0, iter: 0 }), { scenario: "setup" })) as SetupData;
    await Promise.all(Object.entries(s.executors).map(([name, e]) => runExecutor(name, e)));
  } finally {
    await samples.close();
    await agent.close();
  }
  return { setupData, droppedIterations, iterationErrors, firstErrors };
}
