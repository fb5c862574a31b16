import net from "node:net";
import { runId, type ServiceProcess, spawnService, waitFor } from "@flashsale/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * Bounded request lifetimes on the three real service processes (main.ts, config from the
 * environment, as deployed). Fastify 5 turns Node's request timeout off by default, so
 * without HTTP_REQUEST_TIMEOUT_MS / HTTP_HEADERS_TIMEOUT_MS a client trickling bytes would
 * hold its socket forever.
 */
const REQUEST_TIMEOUT_MS = 1_500;
const HEADERS_TIMEOUT_MS = 1_000;
const KEEP_ALIVE_TIMEOUT_MS = 1_000;
const MAX_REQUESTS_PER_SOCKET = 3;
const MAX_CONNECTIONS = 20;
// Node checks the timeouts on a sweep (service-base: every 250 ms at these settings) plus scheduling slack.
const SLACK_MS = 750;
// Node keeps an idle keep-alive socket up to 1 s past keepAliveTimeout (measured: plain node:http does too).
const KEEP_ALIVE_BUFFER_MS = 1_000;

const env = {
  HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
  HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: String(KEEP_ALIVE_TIMEOUT_MS),
  HTTP_MAX_REQUESTS_PER_SOCKET: String(MAX_REQUESTS_PER_SOCKET),
  HTTP_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
};
const services: Record<string, ServiceProcess> = {};

/** n distinct ports nobody listens on right now (other suites run services on fixed and random ports). */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const srv = net.createServer();
          srv.on("error", reject);
          srv.listen(0, "127.0.0.1", () => resolve(srv));
        }),
    ),
  );
  const ports = servers.map((srv) => (srv.address() as net.AddressInfo).port);
  await Promise.all(servers.map((srv) => new Promise((r) => srv.close(r))));
  return ports;
}

beforeAll(async () => {
  const [p1, p2, p3] = (await freePorts(3)) as [number, number, number];
  const schema = String(6_000 + Math.floor(Math.random() * 1_000));
  const [catalog, checkout, invalidator] = await Promise.all([
    spawnService("catalog", p1, { ...env, CACHE_SCHEMA_VERSION: schema }),
    spawnService("checkout", p2, { ...env, CACHE_SCHEMA_VERSION: schema }),
    spawnService("invalidator", p3, {
      ...env,
      CACHE_SCHEMA_VERSION: schema,
      KAFKA_GROUP_ID: `lifetimes-${runId()}`,
      KAFKA_NEW_GROUP_START: "latest",
      CONSISTENCY_CHECK_INTERVAL_MS: "0",
    }),
  ]);
  Object.assign(services, { catalog, checkout, invalidator });
}, 90_000);
afterAll(async () => {
  await Promise.all(Object.values(services).map((s) => s.stop()));
});

interface Exchange {
  /** From the first byte sent until the server closed the connection. */
  closedAfterMs: number;
  /** Everything the server sent. */
  received: string;
}

/**
 * Sends `head` at once, then one byte of `drip` every `everyMs` until the server closes
 * the socket (or `giveUpMs` passes: then closedAfterMs is Infinity).
 */
function trickle(url: string, head: string, drip: string, everyMs: number, giveUpMs: number): Promise<Exchange> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    let received = "";
    let i = 0;
    const socket = net.connect(Number(port), "127.0.0.1", () => {
      if (head) socket.write(head);
    });
    const timer = setInterval(() => {
      const byte = drip[i++ % Math.max(1, drip.length)];
      if (byte && socket.writable && !socket.destroyed) socket.write(byte);
    }, everyMs);
    const giveUp = setTimeout(() => {
      clearInterval(timer);
      socket.destroy();
      resolve({ closedAfterMs: Number.POSITIVE_INFINITY, received });
    }, giveUpMs);
    socket.on("data", (d) => {
      received += d.toString();
    });
    socket.on("error", () => {}); // a reset after the server closes is the expected end
    socket.on("close", () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve({ closedAfterMs: Date.now() - t0, received });
    });
    socket.on("timeout", () => reject(new Error("socket timeout")));
  });
}

const bodyHead = (path: string, length: number, extra = "") =>
  `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n${extra}\r\n{`;

describe("bounded request lifetimes (real processes, HTTP_* config)", () => {
  it.each([
    ["checkout", "/carts", ""],
    ["catalog", "/admin/products", "Authorization: Bearer dev-admin-token-change-me\r\n"],
    ["invalidator", "/healthz", ""],
  ])("%s: a body trickled one byte per 200 ms is cut with 408 within HTTP_REQUEST_TIMEOUT_MS", async (name, path, extra) => {
    const svc = services[name] as ServiceProcess;
    const res = await trickle(svc.url, bodyHead(path, 10_000, extra), " ", 200, 10_000);
    console.log(`${name}: trickled body cut after ${res.closedAfterMs} ms (request timeout ${REQUEST_TIMEOUT_MS} ms)`);
    expect(res.closedAfterMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50);
    expect(res.closedAfterMs).toBeLessThanOrEqual(REQUEST_TIMEOUT_MS + SLACK_MS);
    if (name !== "invalidator") expect(res.received).toMatch(/^HTTP\/1\.1 408 [\s\S]*"error":"REQUEST_TIMEOUT"/);
  });

  it.each(["checkout", "catalog", "invalidator"])(
    "%s: headers trickled one byte per 100 ms are cut within HTTP_HEADERS_TIMEOUT_MS",
    async (name) => {
      const svc = services[name] as ServiceProcess;
      const res = await trickle(svc.url, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", "a", 100, 10_000);
      console.log(`${name}: trickled headers cut after ${res.closedAfterMs} ms (headers timeout ${HEADERS_TIMEOUT_MS} ms)`);
      expect(res.closedAfterMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50);
      expect(res.closedAfterMs).toBeLessThanOrEqual(HEADERS_TIMEOUT_MS + SLACK_MS);
      expect(res.received).toMatch(/^HTTP\/1\.1 408 [\s\S]*"error":"REQUEST_TIMEOUT"/);
    },
  );

  it.each(["checkout", "catalog", "invalidator"])(
    "%s: a connection that never sends a byte is closed within HTTP_HEADERS_TIMEOUT_MS",
    async (name) => {
      const svc = services[name] as ServiceProcess;
      const res = await trickle(svc.url, "", "", 60_000, 10_000);
      console.log(`${name}: silent connection closed after ${res.closedAfterMs} ms`);
      expect(res.closedAfterMs).toBeLessThanOrEqual(HEADERS_TIMEOUT_MS + SLACK_MS);
    },
  );

  it.each(["checkout", "catalog", "invalidator"])("%s: beyond HTTP_MAX_CONNECTIONS a new connection is closed at once", async (name) => {
    const svc = services[name] as ServiceProcess;
    // MAX silent connections (each is cut by the headers timeout later), then one more.
    const held = Array.from({ length: MAX_CONNECTIONS }, () => trickle(svc.url, "", "", 60_000, 10_000));
    const { port } = new URL(svc.url);
    await waitFor(
      async () => {
        // A connect past the limit still completes in the kernel; the server then closes it unanswered.
        const extra = await trickle(svc.url, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "", 60_000, 3_000);
        return extra.received === "" && extra.closedAfterMs < 500 ? true : undefined;
      },
      { timeoutMs: 5_000, intervalMs: 20, what: `${name} to refuse connection ${MAX_CONNECTIONS + 1} (port ${port})` },
    );
    const all = await Promise.all(held);
    // The held ones were served by the headers timeout, not refused.
    expect(all.every((r) => r.closedAfterMs >= HEADERS_TIMEOUT_MS - 50)).toBe(true);
  });

  it.each(["checkout", "catalog", "invalidator"])(
    "%s: a keep-alive connection serves HTTP_MAX_REQUESTS_PER_SOCKET requests, and an idle one closes after HTTP_KEEP_ALIVE_TIMEOUT_MS (+ Node's 1 s buffer)",
    async (name) => {
      const svc = services[name] as ServiceProcess;
      const get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
      // The MAXth answer on a connection says Connection: close and the server closes it.
      const capped = await trickle(svc.url, get.repeat(MAX_REQUESTS_PER_SOCKET), "", 60_000, 5_000);
      expect(capped.received.match(/HTTP\/1\.1 200/g)?.length, capped.received).toBe(MAX_REQUESTS_PER_SOCKET);
      expect(capped.received).toMatch(/[Cc]onnection: close/);
      expect(capped.closedAfterMs).toBeLessThanOrEqual(KEEP_ALIVE_TIMEOUT_MS + KEEP_ALIVE_BUFFER_MS + SLACK_MS);
      // One request, then silence: closed by the keep-alive timeout.
      const idle = await trickle(svc.url, get, "", 60_000, 10_000);
      expect(idle.received).toMatch(/^HTTP\/1\.1 200/);
      expect(idle.closedAfterMs).toBeGreaterThanOrEqual(KEEP_ALIVE_TIMEOUT_MS - 50);
      expect(idle.closedAfterMs).toBeLessThanOrEqual(KEEP_ALIVE_TIMEOUT_MS + KEEP_ALIVE_BUFFER_MS + SLACK_MS);
    },
  );
});
