// Runs a scenario of load-tests/scenarios.js inside k6 (k6 executes this JavaScript itself, not
// Node). The entry files (flash-sale.js, stampede.js, checkout-rush.js) only bind a name; the shape,
// the request mix, the checks and the thresholds all come from scenarios.js.
import { check, sleep } from "k6";
import http from "k6/http";
import { Counter, Trend } from "k6/metrics";
import { METRICS, scenario } from "./scenarios.js";

// 409 (price changed, out of stock) and 429 are answers, not failures; 5xx are failures.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 499 }));

const metrics = {};
for (const [name, kind] of Object.entries(METRICS)) metrics[name] = kind === "trend" ? new Trend(name, true) : new Counter(name);

/** Drives one flow generator synchronously with k6's blocking APIs. */
function drive(gen) {
  let step = gen.next();
  while (!step.done) {
    const op = step.value;
    let result;
    if (op.http) {
      const r = http.request(op.http.method, op.http.url, op.http.body, { headers: op.http.headers, tags: { name: op.http.name } });
      result = { status: r.status, body: typeof r.body === "string" ? r.body : "" };
    } else if (op.sleep !== undefined) {
      sleep(op.sleep);
    } else if (op.metric) {
      metrics[op.metric].add(op.value, op.tags || {});
    } else if (op.check) {
      check(op.ok, { [op.check]: (ok) => ok });
    }
    step = gen.next(result);
  }
  return step.value;
}

export function bind(name) {
  const s = scenario(name, __ENV);
  const exec = {};
  for (const flow of Object.keys(s.flows)) {
    if (flow === "setup") continue;
    exec[flow] = (data) => drive(s.flows[flow]({ env: __ENV, urls: s.urls, data, vu: __VU, iter: __ITER }));
  }
  return {
    options: { setupTimeout: "120s", scenarios: s.executors, thresholds: s.thresholds },
    setup: () => drive(s.flows.setup({ env: __ENV, urls: s.urls, data: null, vu: 0, iter: 0 })),
    exec,
    // load-tests/run.ts reads the setup data (e.g. when the sale closed) from this file.
    handleSummary: (data) => (__ENV.SUMMARY_FILE ? { [__ENV.SUMMARY_FILE]: JSON.stringify({ setupData: data.setup_data }) } : {}),
  };
}
