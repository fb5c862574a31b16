import { createServer, type Server, Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LatencyProxy, viaProxy } from "./latency-proxy.ts";

// The slow rows of scripts/faults rely on this: the proxy forwards both ways and adds its latency to
// every answer only while it is switched on (a private echo server here, nothing shared).
let echo: Server;
let proxy: LatencyProxy;

beforeAll(async () => {
  echo = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
  proxy = await new LatencyProxy("127.0.0.1", (echo.address() as { port: number }).port).start();
});
afterAll(async () => {
  await proxy.stop();
  await new Promise((r) => echo.close(r));
});

async function roundTrips(n: number): Promise<number[]> {
  const s = new Socket();
  await new Promise<void>((r) => s.connect(proxy.port, "127.0.0.1", r));
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const got = new Promise<string>((r) => s.once("data", (d) => r(d.toString())));
    s.write(`ping ${i}`);
    expect(await got).toBe(`ping ${i}`);
    out.push(performance.now() - t0);
  }
  s.destroy();
  return out;
}

describe("LatencyProxy", () => {
  it("forwards unchanged, and adds its latency to each round trip only while switched on", async () => {
    // Medians against a latency far above scheduling noise: on 2 shared cores one round trip of
    // an unproxied echo can stall for tens of ms (GC, another process), so no single sample is
    // bounded; a timer never fires early, so every slow round trip is bounded below.
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
    proxy.latencyMs = 0;
    const fast = await roundTrips(7);
    proxy.latencyMs = 250;
    const slow = await roundTrips(5);
    proxy.latencyMs = 0;
    const again = await roundTrips(7);
    expect(median(fast)).toBeLessThan(125);
    expect(Math.min(...slow)).toBeGreaterThanOrEqual(249);
    expect(median(again)).toBeLessThan(125);
  });

  it("rewrites a connection URL to the proxy, keeping credentials and database", () => {
    expect(viaProxy("postgresql://u:p@127.0.0.1:5432/flashsale?x=1", proxy)).toBe(`postgresql://u:p@127.0.0.1:${proxy.port}/flashsale?x=1`);
    expect(viaProxy("redis://127.0.0.1:6379/0", proxy)).toBe(`redis://127.0.0.1:${proxy.port}/0`);
  });
});
