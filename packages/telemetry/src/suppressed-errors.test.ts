import { Writable } from "node:stream";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createLogger } from "./index.ts";
import { reportSuppressedErrors } from "./suppressed-errors.ts";

describe("reportSuppressedErrors", () => {
  it("counts every failure but logs each operation at most once per interval, with what it skipped", async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(JSON.parse(String(chunk)));
        cb();
      },
    });
    let t = 0;
    const registry = new Registry();
    const report = reportSuppressedErrors({
      registry,
      logger: createLogger("probe", "warn", sink),
      metric: "probe_suppressed_errors_total",
      component: "probe",
      logEveryMs: 1_000,
      now: () => t,
    });
    for (let i = 0; i < 500; i++) report("background_refresh", new Error("db down"));
    report("lease_release", new Error("redis down"));
    t = 1_000;
    report("background_refresh", new Error("db down"));
    await new Promise((r) => setImmediate(r));

    const text = await registry.metrics();
    expect(text).toContain('probe_suppressed_errors_total{operation="background_refresh"} 501');
    expect(text).toContain('probe_suppressed_errors_total{operation="lease_release"} 1');
    expect(lines.map((l) => [l.operation, l.unloggedSinceLastLine])).toEqual([
      ["background_refresh", 0],
      ["lease_release", 0],
      ["background_refresh", 499],
    ]);
  });
});
