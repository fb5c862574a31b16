// The ONE definition of every load-test scenario: its shape (executors with arrival rates, VUs and
// durations), its request mix (the flows), its checks, custom metrics and thresholds.
// Two drivers run it unchanged:
//   - load-tests/k6-driver.js, inside k6 (the entry files flash-sale.js, stampede.js, checkout-rush.js);
//   - load-tests/native.ts, in Node with undici, where no k6 is installed.
// So this file is plain ECMAScript with no imports: k6's runtime and Node both load it.
//
// A flow is a generator that yields operations and receives their results:
//   yield { http: { method, url, body, headers, name } }  -> { status, body }   (one request)
//   yield { sleep: seconds }                                                     (pause this VU)
//   yield { metric: name, value, tags }                                          (custom metric)
//   yield { check: name, ok }                                                    (a k6-style check)
// A 5xx or a transport error counts in http_req_failed (409, 429 etc. are answers, not failures).

/**
 * A numeric parameter of a scenario (DURATION_S, PEAK_RATE, …): the default when unset, else a whole
 * number of at least `min`. Anything else stops the run before it touches the stack: "abc" would
 * otherwise become NaN (an arrival rate of NaN sends nothing, and a run with no load passes every
 * threshold), a negative duration a stage k6 refuses after setup has already written products.
 */
function param(env, key, dflt, min) {
  const raw = env[key];
  if (raw === undefined || raw === "") return dflt;
  const v = Number(raw);
  if (!/^\s*\d+\s*$/.test(String(raw)) || !Number.isSafeInteger(v) || v < min)
    throw new Error(`${key} must be a whole number >= ${min}, got '${raw}'`);
  return v;
}

/** Executors, as k6 understands them; the native runner implements the same four kinds. Only the chosen scenario's parameters are read. */
const SHAPES = {
  "flash-sale"(env) {
    const flashDuration = param(env, "DURATION_S", 60, 1);
    const peak = param(env, "PEAK_RATE", 60, 1);
    param(env, "SALE_ENDS_AFTER_S", 0, 0); // read by the setup flow
    const quarter = Math.floor(flashDuration / 4);
    const half = Math.floor(flashDuration / 2);
    return {
      executors: {
        shoppers: {
          executor: "ramping-arrival-rate",
          exec: "shopper",
          startRate: 5,
          timeUnit: "1s",
          preAllocatedVUs: 50,
          maxVUs: 300,
          stages: [
            { duration: `${quarter}s`, target: peak },
            { duration: `${half}s`, target: peak },
            // Ramp down over the rest, so the shoppers run as long as the browsers (DURATION_S).
            { duration: `${flashDuration - quarter - half}s`, target: 5 },
          ],
        },
        browsers: {
          executor: "constant-arrival-rate",
          exec: "browser",
          rate: peak * 5,
          timeUnit: "1s",
          duration: `${flashDuration}s`,
          preAllocatedVUs: 30,
          maxVUs: 200,
        },
        admin: {
          executor: "constant-arrival-rate",
          exec: "admin",
          rate: 1,
          timeUnit: "1s",
          duration: `${flashDuration}s`,
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
  },
  stampede(env) {
    const duration = param(env, "DURATION_S", 30, 1);
    const readRate = param(env, "READ_RATE", 1500, 1);
    param(env, "HOT_KEYS", 5, 1); // read by the flows
    param(env, "WRITE_EVERY_MS", 200, 1);
    return {
      executors: {
        readers: {
          executor: "constant-arrival-rate",
          exec: "reader",
          rate: readRate,
          timeUnit: "1s",
          duration: `${duration}s`,
          preAllocatedVUs: 100,
          maxVUs: 400,
        },
        writer: { executor: "constant-vus", exec: "writer", vus: 1, duration: `${duration}s` },
      },
      thresholds: { http_req_failed: ["rate==0"], "http_req_duration{name:get_product}": ["p(99)<250"] },
    };
  },
  "checkout-rush"(env) {
    const vus = param(env, "VUS", 100, 1);
    const buyers = param(env, "BUYERS", 2000, 1);
    const stock = param(env, "STOCK", 100, 0);
    return {
      executors: {
        rush: {
          executor: "shared-iterations",
          exec: "buyer",
          vus,
          iterations: buyers,
          maxDuration: "5m",
        },
      },
      thresholds: {
        http_req_failed: ["rate==0"],
        // Exactly STOCK orders when there are at least as many buyers; otherwise every buyer buys.
        "checkout_outcomes{code:placed}": [`count==${Math.min(stock, buyers)}`],
        "http_req_duration{name:checkout}": ["p(99)<3000"],
        "http_req_duration{name:get_product}": ["p(99)<1000"],
      },
    };
  },
};

/** Custom metrics: name -> "counter" | "trend" (trend values in ms are times). */
export const METRICS = {
  stale_sale_reads: "counter",
  checkout_outcomes: "counter",
  admin_write_visible_ms: "trend",
  admin_writes: "counter",
};

function urls(env) {
  return {
    catalog: env.CATALOG_URL || "http://127.0.0.1:3001",
    checkout: env.CHECKOUT_URL || "http://127.0.0.1:3002",
    adminToken: env.ADMIN_TOKEN || "dev-admin-token-change-me",
  };
}

const JSON_HEADERS = { "content-type": "application/json" };

function parse(res) {
  try {
    return JSON.parse(res.body);
  } catch {
    return null;
  }
}

function* request(method, url, body, headers, name) {
  return yield { http: { method, url, body: body === undefined ? null : body, headers: headers || {}, name } };
}

function adminHeaders(ctx) {
  return { authorization: `Bearer ${ctx.urls.adminToken}`, "content-type": "application/json" };
}

function pick(ids) {
  return ids[Math.floor(Math.random() * ids.length)];
}

function runTag() {
  return `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}

/** Creates `n` fresh products with `stock` each through the admin API; returns their ids. */
function* createProducts(ctx, n, stock, listPriceCents, tag) {
  const ids = [];
  for (let i = 0; i < n; i++) {
    const res = yield* request(
      "POST",
      `${ctx.urls.catalog}/admin/products`,
      JSON.stringify({ sku: `LOAD-${tag}-${i}`, name: `load ${tag} ${i}`, listPriceCents, stock }),
      adminHeaders(ctx),
      "admin_create",
    );
    if (res.status === 401 || res.status === 403)
      throw new Error(
        `the catalog refused the admin token (${res.status}): set ADMIN_TOKEN (environment or ADMIN_TOKEN=… argument) to the catalog's`,
      );
    if (res.status !== 201) throw new Error(`create product: ${res.status} ${res.body}`);
    ids.push(parse(res).id);
  }
  return ids;
}

/** One shopper: view, add to cart, check out. Returns the product view and the last response. */
function* buy(ctx, productId, userId, keyPrefix) {
  const view = yield* request("GET", `${ctx.urls.catalog}/products/${productId}`, null, {}, "get_product");
  // A signed-in shopper: the gateway sets X-User-Id on every request (README "Ownership").
  const asUser = { ...JSON_HEADERS, "x-user-id": userId };
  const cart = yield* request("POST", `${ctx.urls.checkout}/carts`, "{}", asUser, "create_cart");
  if (cart.status !== 201) return { view, res: cart };
  const cartId = parse(cart).id;
  yield* request("POST", `${ctx.urls.checkout}/carts/${cartId}/items`, JSON.stringify({ productId, quantity: 1 }), asUser, "add_item");
  const res = yield* request(
    "POST",
    `${ctx.urls.checkout}/carts/${cartId}/checkout`,
    null,
    { "idempotency-key": `${keyPrefix}-${cartId}`, "x-user-id": userId },
    "checkout",
  );
  return { view, res };
}

function outcomeCode(res) {
  if (res.status === 201) return "placed";
  // 4xx answers and 503 OVERLOADED carry an error code; anything else is counted by status.
  const body = res.status >= 400 ? parse(res) : null;
  return body?.error ? body.error : String(res.status);
}

/** A response showing the sale price although the request began after the sale ended. */
function* recordStaleSale(res, sentAt, endsAtMs) {
  if (res.status !== 200) return;
  const p = parse(res);
  if (sentAt > endsAtMs && p?.sale && p.priceCents === p.sale.priceCents) yield { metric: "stale_sale_reads", value: 1 };
}

const FLOWS = {
  // Flash sale: shoppers arrive at a ramping rate, browse hot products, add to cart and check out,
  // while the sale window CLOSES mid-run (prices go back up, with no write) and an admin changes
  // list prices. Measured: latency per endpoint, checkout outcomes, reads of the sale price after
  // the sale ended (stale reads), and how long an admin price change takes to become visible.
  "flash-sale": {
    *setup(ctx) {
      const tag = runTag();
      const ids = yield* createProducts(ctx, 20, 300, 2000, tag);
      const saleEndsAfterS = Number(ctx.env.SALE_ENDS_AFTER_S || Math.floor(Number(ctx.env.DURATION_S || 60) / 2));
      const endsAt = new Date(Date.now() + saleEndsAfterS * 1000).toISOString();
      const sale = yield* request(
        "POST",
        `${ctx.urls.catalog}/admin/sales`,
        JSON.stringify({ productIds: ids, percentOff: 40, startsAt: new Date(Date.now() - 1000).toISOString(), endsAt }),
        adminHeaders(ctx),
        "admin_sale",
      );
      if (sale.status !== 201) throw new Error(`sale: ${sale.status} ${sale.body}`);
      return { ids, endsAtMs: Date.parse(endsAt), tag, marks: [{ label: "sale closed", at: Date.parse(endsAt) }] };
    },
    *browser(ctx) {
      const sentAt = Date.now();
      const res = yield* request("GET", `${ctx.urls.catalog}/products/${pick(ctx.data.ids)}`, null, {}, "get_product");
      yield { check: "product 200", ok: res.status === 200 };
      yield* recordStaleSale(res, sentAt, ctx.data.endsAtMs);
    },
    *shopper(ctx) {
      const sentAt = Date.now();
      const { view, res } = yield* buy(ctx, pick(ctx.data.ids), `u-${ctx.data.tag}-${ctx.vu}-${ctx.iter}`, ctx.data.tag);
      yield* recordStaleSale(view, sentAt, ctx.data.endsAtMs);
      yield { metric: "checkout_outcomes", value: 1, tags: { code: outcomeCode(res) } };
    },
    *admin(ctx) {
      const id = pick(ctx.data.ids);
      const price = 1500 + Math.floor(Math.random() * 1000);
      const put = yield* request(
        "PUT",
        `${ctx.urls.catalog}/admin/products/${id}/price`,
        JSON.stringify({ listPriceCents: price }),
        adminHeaders(ctx),
        "admin_price",
      );
      if (put.status !== 200) return;
      const version = parse(put).version;
      const start = Date.now();
      // The stale-read window: until the catalog serves the new version (poll, bounded).
      while (Date.now() - start < 5000) {
        const r = yield* request("GET", `${ctx.urls.catalog}/products/${id}`, null, {}, "admin_poll");
        const p = r.status === 200 ? parse(r) : null;
        if (p && p.version >= version) {
          yield { metric: "admin_write_visible_ms", value: Date.now() - start };
          return;
        }
        yield { sleep: 0.005 };
      }
      yield { metric: "admin_write_visible_ms", value: 5000 };
    },
  },
  // Stampede: a high read rate on a few hot keys while an admin changes their prices every
  // WRITE_EVERY_MS (each change is evicted through CDC). The runner counts Postgres' product reads
  // (pg_stat_statements) and divides by the writes.
  stampede: {
    *setup(ctx) {
      return { ids: yield* createProducts(ctx, Number(ctx.env.HOT_KEYS || 5), 1, 1000, runTag()), marks: [] };
    },
    *reader(ctx) {
      const res = yield* request("GET", `${ctx.urls.catalog}/products/${pick(ctx.data.ids)}`, null, {}, "get_product");
      yield { check: "product 200", ok: res.status === 200 };
    },
    *writer(ctx) {
      for (const id of ctx.data.ids) {
        const res = yield* request(
          "PUT",
          `${ctx.urls.catalog}/admin/products/${id}/price`,
          JSON.stringify({ listPriceCents: 1000 + Math.floor(Math.random() * 500) }),
          adminHeaders(ctx),
          "admin_price",
        );
        if (res.status === 200) yield { metric: "admin_writes", value: 1 };
        yield { sleep: Number(ctx.env.WRITE_EVERY_MS || 200) / 1000 };
      }
    },
  },
  // Checkout rush: thousands of buyers on one SKU with limited stock, all at once. Exactly STOCK
  // orders must succeed; everybody else gets OUT_OF_STOCK; no 5xx.
  "checkout-rush": {
    *setup(ctx) {
      const tag = runTag();
      const ids = yield* createProducts(ctx, 1, Number(ctx.env.STOCK || 100), 999, tag);
      return { id: ids[0], tag, marks: [] };
    },
    *buyer(ctx) {
      const { res } = yield* buy(ctx, ctx.data.id, `rush-${ctx.data.tag}-${ctx.vu}-${ctx.iter}`, ctx.data.tag);
      yield { metric: "checkout_outcomes", value: 1, tags: { code: outcomeCode(res) } };
    },
  },
};

export const SCENARIO_NAMES = Object.keys(FLOWS);

/**
 * The scenario `name` for the environment `env` (k6's __ENV or the runner's KEY=value arguments):
 * { executors, thresholds, flows: { setup, <exec>... }, urls }.
 */
export function scenario(name, env) {
  const flows = FLOWS[name];
  if (!Object.hasOwn(SHAPES, name) || !flows) throw new Error(`unknown scenario '${name}' (${SCENARIO_NAMES.join(", ")})`);
  const shape = SHAPES[name](env);
  return { name, executors: shape.executors, thresholds: shape.thresholds, flows, urls: urls(env) };
}
