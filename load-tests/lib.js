// Shared helpers for the k6 scenarios (k6 runs this JavaScript itself, not Node).
import http from "k6/http";

export const CATALOG = __ENV.CATALOG_URL || "http://127.0.0.1:3001";
export const CHECKOUT = __ENV.CHECKOUT_URL || "http://127.0.0.1:3002";
export const ADMIN = {
  headers: { authorization: `Bearer ${__ENV.ADMIN_TOKEN || "dev-admin-token-change-me"}`, "content-type": "application/json" },
};
export const JSON_HEADERS = { "content-type": "application/json" };

// 409 (price changed, out of stock) and 429 are answers, not failures; 5xx are failures.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 499 }));

/** Creates `n` fresh products with `stock` each through the admin API; returns their ids. */
export function createProducts(n, stock, listPriceCents, tag) {
  const ids = [];
  for (let i = 0; i < n; i++) {
    const res = http.post(
      `${CATALOG}/admin/products`,
      JSON.stringify({ sku: `K6-${tag}-${i}`, name: `k6 ${tag} ${i}`, listPriceCents, stock }),
      Object.assign({ tags: { name: "admin_create" } }, ADMIN),
    );
    if (res.status !== 201) throw new Error(`create product: ${res.status} ${res.body}`);
    ids.push(res.json().id);
  }
  return ids;
}

/** One shopper: view, add to cart, check out. Returns the checkout response. */
export function buy(productId, userId, tagPrefix) {
  const view = http.get(`${CATALOG}/products/${productId}`, { tags: { name: "get_product" } });
  const cart = http.post(`${CHECKOUT}/carts`, JSON.stringify({ userId }), { headers: JSON_HEADERS, tags: { name: "create_cart" } });
  if (cart.status !== 201) return { view, res: cart };
  const cartId = cart.json().id;
  http.post(`${CHECKOUT}/carts/${cartId}/items`, JSON.stringify({ productId, quantity: 1 }), {
    headers: JSON_HEADERS,
    tags: { name: "add_item" },
  });
  const res = http.post(`${CHECKOUT}/carts/${cartId}/checkout`, null, {
    headers: { "idempotency-key": `${tagPrefix}-${cartId}`, "x-user-id": userId },
    tags: { name: "checkout" },
  });
  return { view, res };
}

export function runTag() {
  return `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}
