import { Writable } from "node:stream";
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "./index.ts";

/** Log lines carry the active span's trace_id/span_id (so a line leads to its trace), and only then. */
const manager = new AsyncLocalStorageContextManager();
beforeAll(() => {
  context.setGlobalContextManager(manager.enable());
});
afterAll(() => {
  context.disable();
});

function capture(): { lines: Record<string, unknown>[]; stream: Writable } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(String(chunk)));
      cb();
    },
  });
  return { lines, stream };
}

describe("createLogger", () => {
  it("adds trace_id and span_id inside an active span, nothing outside one", async () => {
    const { lines, stream } = capture();
    const log = createLogger("probe", "info", stream);
    const spanContext = { traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", traceFlags: 1 };
    context.with(trace.setSpanContext(context.active(), spanContext), () => log.info("inside"));
    log.info("outside");
    await new Promise((r) => setImmediate(r));
    expect(lines[0]).toMatchObject({ msg: "inside", trace_id: spanContext.traceId, span_id: spanContext.spanId });
    expect(lines[1]?.msg).toBe("outside");
    expect(lines[1]).not.toHaveProperty("trace_id");
  });
});
