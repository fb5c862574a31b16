import net from "node:net";
import { type ServiceProcess, spawnService, waitFor } from "@flashsale/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * HTTP/1.1 pipelining is bounded (packages/http client-errors.ts limitPipelining). Node starts
 * the handler of every pipelined request it has read before writing any answer, so a client
 * that pipelined thousands of requests for a large answer and never read made the process
 * buffer all of them (one connection: 200 MB -> over 1 GB RSS in seconds with the API page's
 * bundle). Real checkout process on the test stack.
 */
const PORT = 4_600 + Math.floor(Math.random() * 300);
let checkout: ServiceProcess;

beforeAll(async () => {
  checkout = await spawnService("checkout", PORT, {});
}, 60_000);
afterAll(async () => {
  await checkout?.stop();
});

/**
 * Sends `count` pipelined GETs of `path` at once. `read`: reads the answers as they come;
 * otherwise reads nothing for `stallMs`, then reads what is left. Resolves with the answers
 * received and whether the server had closed the connection by then.
 */
function pipeline(path: string, count: number, read: boolean, stallMs = 0): Promise<{ answers: number; closed: boolean }> {
  return new Promise((resolve) => {
    let received = "";
    let closed = false;
    const socket = net.connect(PORT, "127.0.0.1", () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(count));
      if (!read) {
        socket.pause();
        setTimeout(() => socket.resume(), stallMs);
      }
    });
    const answers = () => received.split("HTTP/1.1 200").length - 1;
    const done = () => {
      clearTimeout(giveUp);
      socket.destroy();
      resolve({ answers: answers(), closed });
    };
    // After the stall, the rest arrives at loopback speed: 10 s is plenty for either outcome.
    const giveUp = setTimeout(done, stallMs + 10_000);
    socket.on("data", (d) => {
      received += d.toString("latin1");
      if (answers() === count) done();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      closed = true;
      done();
    });
  });
}

async function cuts(): Promise<number> {
  const text = await (await fetch(`${checkout.url}/metrics`)).text();
  return Number(/^http_pipelining_limit_cuts_total(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? "NaN");
}

describe("pipelining bound (real checkout process)", () => {
  it("answers a moderately pipelined connection in full", async () => {
    expect(await pipeline("/healthz", 20, true)).toEqual({ answers: 20, closed: false });
    expect(await cuts()).toBe(0);
  });

  it("destroys a connection that pipelines thousands of requests without reading the answers", async () => {
    const t0 = Date.now();
    const stalled = pipeline("/docs/json", 3_000, false, 3_000);
    // Without the bound the process keeps the connection and buffers one 20 KB answer per
    // request (3,000 here: 60 MB) for a client that reads nothing.
    await waitFor(async () => ((await cuts()) === 1 ? true : undefined), { timeoutMs: 3_000, intervalMs: 50, what: "the pipelining cut" });
    expect(Date.now() - t0).toBeLessThan(3_000);
    const res = await stalled;
    expect(res.closed).toBe(true);
    expect(res.answers).toBeLessThan(3_000);
    // The service still answers others.
    expect((await fetch(`${checkout.url}/healthz`)).status).toBe(200);
  }, 30_000);
});

describe("protocol-level errors (real checkout process)", () => {
  it("a request Node refuses before fastify sees it (400, 431) still carries an X-Request-Id", async () => {
    const raw = (request: string) =>
      new Promise<string>((resolve) => {
        let received = "";
        const socket = net.connect(PORT, "127.0.0.1", () => socket.write(request));
        socket.on("data", (d) => {
          received += d.toString("latin1");
        });
        socket.on("error", () => {});
        socket.on("close", () => resolve(received));
      });
    const malformed = await raw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\u0001b\r\n\r\n");
    expect(malformed).toMatch(/^HTTP\/1\.1 400 /);
    expect(malformed).toMatch(/\r\nX-Request-Id: [0-9a-f-]{36}\r\n/i);
    const huge = await raw(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
    expect(huge).toMatch(/^HTTP\/1\.1 431 /);
    expect(huge).toMatch(/\r\nX-Request-Id: [0-9a-f-]{36}\r\n/i);
  });
});
