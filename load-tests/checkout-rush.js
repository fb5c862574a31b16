// Checkout rush: thousands of buyers on one SKU with limited stock, all at once.
// Exactly STOCK orders must succeed; everybody else gets OUT_OF_STOCK; no 5xx.
import { Counter } from "k6/metrics";
import { buy, createProducts, runTag } from "./lib.js";

const BUYERS = Number(__ENV.BUYERS || 2000);
const STOCK = Number(__ENV.STOCK || 100);
const outcomes = new Counter("checkout_outcomes");

export const options = {
  setupTimeout: "60s",
  scenarios: {
    rush: { executor: "shared-iterations", exec: "buyer", vus: Number(__ENV.VUS || 100), iterations: BUYERS, maxDuration: "5m" },
  },
  thresholds: {
    http_req_failed: ["rate==0"],
    "checkout_outcomes{code:placed}": [`count==${STOCK}`],
    "http_req_duration{name:checkout}": ["p(99)<3000"],
    "http_req_duration{name:get_product}": ["p(99)<1000"],
  },
};

export function setup() {
  const tag = runTag();
  return { id: createProducts(1, STOCK, 999, tag)[0], tag };
}

export function buyer(data) {
  const { res } = buy(data.id, `rush-${data.tag}-${__VU}-${__ITER}`, data.tag);
  outcomes.add(1, { code: res.status === 201 ? "placed" : res.status >= 400 && res.status < 500 ? res.json().error : String(res.status) });
}
