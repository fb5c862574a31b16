// Stampede: a high read rate on a few hot keys while an admin changes their prices
// every WRITE_EVERY_MS (each change is evicted through CDC). load-tests/run counts the
// Postgres reads of products (pg_stat_statements) and divides by the writes.
import { check, sleep } from "k6";
import http from "k6/http";
import { Counter } from "k6/metrics";
import { ADMIN, CATALOG, createProducts, runTag } from "./lib.js";

const DURATION_S = Number(__ENV.DURATION_S || 30);
const writes = new Counter("admin_writes");

export const options = {
  setupTimeout: "60s",
  scenarios: {
    readers: {
      executor: "constant-arrival-rate",
      exec: "reader",
      rate: Number(__ENV.READ_RATE || 1500),
      timeUnit: "1s",
      duration: `${DURATION_S}s`,
      preAllocatedVUs: 100,
      maxVUs: 400,
    },
    writer: { executor: "constant-vus", exec: "writer", vus: 1, duration: `${DURATION_S}s` },
  },
  thresholds: { http_req_failed: ["rate==0"], "http_req_duration{name:get_product}": ["p(99)<250"] },
};

export function setup() {
  return { ids: createProducts(Number(__ENV.HOT_KEYS || 5), 1, 1000, runTag()) };
}

export function reader(data) {
  const res = http.get(`${CATALOG}/products/${data.ids[Math.floor(Math.random() * data.ids.length)]}`, { tags: { name: "get_product" } });
  check(res, { 200: (r) => r.status === 200 });
}

export function writer(data) {
  for (const id of data.ids) {
    const res = http.put(
      `${CATALOG}/admin/products/${id}/price`,
      JSON.stringify({ listPriceCents: 1000 + Math.floor(Math.random() * 500) }),
      Object.assign({ tags: { name: "admin_price" } }, ADMIN),
    );
    if (res.status === 200) writes.add(1);
    sleep(Number(__ENV.WRITE_EVERY_MS || 200) / 1000);
  }
}
