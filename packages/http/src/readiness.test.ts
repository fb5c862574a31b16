import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createServiceBase, type ReadinessAnyOf, type ReadinessCheck } from "./service-base.ts";

// /readyz semantics every service shares (README "Probes"): required checks, optional ones that only
// degrade, and anyOf rules judged from the checks' own results (each dependency asked once per probe).

function counted(name: string, up: () => boolean, required?: boolean): ReadinessCheck & { calls: number } {
  const c = {
    name,
    calls: 0,
    async check() {
      c.calls++;
      if (!up()) throw new Error(`${name} down`);
    },
    ...(required === undefined ? {} : { required }),
  };
  return c;
}

async function serve(readiness: Array<ReadinessCheck | ReadinessAnyOf>) {
  return createServiceBase({ title: "t", logger: undefined, metrics: new Registry(), readiness });
}

describe("/readyz", () => {
  const state = { db: true, cache: true };
  const db = counted("postgres", () => state.db, false);
  const cache = counted("redis", () => state.cache, false);
  const rule: ReadinessAnyOf = { name: "cache_or_postgres", anyOf: ["postgres", "redis"], failure: "neither answers" };

  it("asks each dependency once per probe, also when a rule names it", async () => {
    const app = await serve([db, cache, rule]);
    db.calls = 0;
    cache.calls = 0;
    const res = await app.inject({ url: "/readyz" });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: "ready", checks: { postgres: "ok", redis: "ok", cache_or_postgres: "ok" } });
    expect([db.calls, cache.calls]).toEqual([1, 1]);
    await app.close();
  });

  it("stays ready (degraded) while one of an anyOf rule's checks passes, and not when none does", async () => {
    const app = await serve([db, cache, rule]);
    state.db = false;
    let res = await app.inject({ url: "/readyz" });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: "degraded", checks: { postgres: "postgres down", redis: "ok", cache_or_postgres: "ok" } });
    state.cache = false;
    res = await app.inject({ url: "/readyz" });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ status: "not_ready", checks: { cache_or_postgres: "neither answers" } });
    // Liveness never looks at a dependency: a restart would not bring Postgres or Redis back.
    expect((await app.inject({ url: "/healthz" })).statusCode).toBe(200);
    state.db = true;
    state.cache = true;
    await app.close();
  });

  it("a required check that fails is not ready; a rule naming an unknown check is refused at start", async () => {
    const app = await serve([counted("kafka", () => false)]);
    expect((await app.inject({ url: "/readyz" })).statusCode).toBe(503);
    await app.close();
    await expect(serve([db, { name: "x", anyOf: ["nope"], failure: "f" }])).rejects.toThrow(/names no check nope/);
  });
});
