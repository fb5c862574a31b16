// Flash sale: shoppers arrive at a ramping rate, browse hot products, add to cart and
// check out, while the sale window CLOSES mid-run (prices go back up, with no write)
// and an admin changes list prices. Measured: latency per endpoint, checkout outcomes,
// reads of the sale price after the sale ended (stale reads), and how long an admin
// price change takes to become visible (the stale-read window).
// Wrong-price orders and oversell are audited after the run by load-tests/run.
import { check, sleep } from "k6";
import http from "k6/http";
import { Counter, Trend } from "k6/metrics";
import { ADMIN, buy, CATALOG, createProducts, runTag } from "./lib.js";

const DURATION_S = Number(__ENV.DURATION_S || 60);
const SALE_ENDS_AFTER_S = Number(__ENV.SALE_ENDS_AFTER_S || Math.floor(DURATION_S / 2));
const PEAK_RATE = Number(__ENV.PEAK_RATE || 60); // shoppers per second at the peak
const HOT = 20;

const staleSaleReads = new Counter("stale_sale_reads");
const outcomes = new Counter("checkout_outcomes");
const writeVisibleMs = new Trend("admin_write_visible_ms", true);

export const options = {
  setupTimeout: "120s",
  scenarios: {
    shoppers: {
      executor: "ramping-arrival-rate",
      exec: "shopper",
      startRate: 5,
      timeUnit: "1s",
      preAllocatedVUs: 50,
      maxVUs: 300,
      stages: [
        { duration: `${Math.floor(DURATION_S / 4)}s`, target: PEAK_RATE },
        { duration: `${Math.floor(DURATION_S / 2)}s`, target: PEAK_RATE },
        { duration: `${DURATION_S - 2 * Math.floor(DURATION_S / 4) - Math.floor(DURATION_S / 2)}s`, target: 5 },
      ],
    },
    browsers: {
      executor: "constant-arrival-rate",
      exec: "browser",
      rate: PEAK_RATE * 5,
      timeUnit: "1s",
      duration: `${DURATION_S}s`,
      preAllocatedVUs: 30,
      maxVUs: 200,
    },
    admin: {
      executor: "constant-arrival-rate",
      exec: "admin",
      rate: 1,
      timeUnit: "1s",
      duration: `${DURATION_S}s`,
      preAllocatedVUs: 2,
      maxVUs: 5,
    },
  },
  thresholds: {
    http_req_failed: ["rate==0"], // no 5xx, no transport errors
    stale_sale_reads: ["count==0"],
    "http_req_duration{name:get_product}": ["p(99)<250"],
    "http_req_duration{name:checkout}": ["p(99)<1500"],
    admin_write_visible_ms: ["p(99)<2000"],
  },
};

export function setup() {
  const tag = runTag();
  const ids = createProducts(HOT, 300, 2000, tag);
  const endsAt = new Date(Date.now() + SALE_ENDS_AFTER_S * 1000).toISOString();
  const sale = http.post(
    `${CATALOG}/admin/sales`,
    JSON.stringify({ productIds: ids, percentOff: 40, startsAt: new Date(Date.now() - 1000).toISOString(), endsAt }),
    Object.assign({ tags: { name: "admin_sale" } }, ADMIN),
  );
  if (sale.status !== 201) throw new Error(`sale: ${sale.status} ${sale.body}`);
  return { ids, endsAtMs: Date.parse(endsAt), tag };
}

function pick(ids) {
  return ids[Math.floor(Math.random() * ids.length)];
}

/** A response showing the sale price although the request began after the sale ended. */
function recordStaleSale(res, sentAt, endsAtMs) {
  if (res.status !== 200) return;
  const p = res.json();
  if (sentAt > endsAtMs && p.sale && p.priceCents === p.sale.priceCents) staleSaleReads.add(1);
}

export function browser(data) {
  const sentAt = Date.now();
  const res = http.get(`${CATALOG}/products/${pick(data.ids)}`, { tags: { name: "get_product" } });
  check(res, { "product 200": (r) => r.status === 200 });
  recordStaleSale(res, sentAt, data.endsAtMs);
}

export function shopper(data) {
  const sentAt = Date.now();
  const { view, res } = buy(pick(data.ids), `u-${data.tag}-${__VU}-${__ITER}`, data.tag);
  recordStaleSale(view, sentAt, data.endsAtMs);
  let code = String(res.status);
  if (res.status === 201) code = "placed";
  else if (res.status === 409 || res.status === 429 || res.status === 503) code = res.json().error;
  outcomes.add(1, { code });
}

export function admin(data) {
  const id = pick(data.ids);
  const price = 1500 + Math.floor(Math.random() * 1000);
  const put = http.put(
    `${CATALOG}/admin/products/${id}/price`,
    JSON.stringify({ listPriceCents: price }),
    Object.assign({ tags: { name: "admin_price" } }, ADMIN),
  );
  if (put.status !== 200) return;
  const version = put.json().version;
  const start = Date.now();
  // The stale-read window: until the catalog serves the new version (poll, bounded).
  while (Date.now() - start < 5000) {
    const r = http.get(`${CATALOG}/products/${id}`, { tags: { name: "admin_poll" } });
    if (r.status === 200 && r.json().version >= version) {
      writeVisibleMs.add(Date.now() - start);
      return;
    }
    sleep(0.005);
  }
  writeVisibleMs.add(5000);
}
