/**
 * What the staleness bound costs a cache hit (issue 10 item 2: "the hit path costs nothing extra"),
 * in process, no HTTP: the same ProtocolCache hit loop with and without the freshness gate (the
 * gate trusted, as while the watermark is fresh), interleaved rounds in one run, on the test stack's
 * Redis (its own key space; L1 needs its tracking channel up).
 *
 *   pnpm exec tsx bench/cache-gate.ts [rounds=5] [getsPerRound=1000000]
 *
 * L1 hits are synchronous work (no I/O), so their ops/s is the cost of the hit path itself; Redis hits
 * (L1 off) include a round trip each and run 1/100 as many gets. Writes bench/results/cache-gate.{json,md}.
 */
import { writeFile } from "node:fs/promises";
import { createVersionedCache, type FreshnessGate, keyPrefix, L1Invalidations, type VersionedCache } from "@flashsale/cache";
import { redisClient, waitFor } from "@flashsale/testkit";

type Row = { id: number; version: number };
const ROUNDS = Number(process.argv[2] ?? 5);
const GETS = Number(process.argv[3] ?? 1_000_000);
const SCHEMA = 800_000 + Math.floor(Math.random() * 99_999);

const redis = redisClient();
const invalidations = new L1Invalidations(redis, keyPrefix(SCHEMA));
await invalidations.start();
await waitFor(async () => (invalidations.isUp ? true : undefined), { timeoutMs: 5_000, what: "L1 channel" });

const trusted: FreshnessGate = { trusted: true };
function cache(l1: boolean, gate: boolean): VersionedCache<Row> {
  return createVersionedCache<Row>({
    redis,
    entity: "product",
    schemaVersion: SCHEMA,
    ttlMs: 600_000,
    leaseMs: 2_000,
    jitter: 0,
    earlyRefreshBeta: 0,
    versionOf: (r) => r.version,
    validUntilMs: () => null,
    isValid: (x): x is Row => typeof x === "object" && x !== null,
    ...(l1 ? { l1: { invalidations, ttlMs: 600_000 } } : {}),
    ...(gate ? { staleness: { gate: trusted, deltaMs: 2_000, probeVersion: async () => 1 } } : {}),
  });
}
const load = async () => ({ id: 1, version: 1 });

async function opsPerSecond(c: VersionedCache<Row>, n: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await c.get(1, load);
  return n / ((performance.now() - t0) / 1000);
}

const targets = {
  "L1 hit, no gate": cache(true, false),
  "L1 hit, gate (trusted)": cache(true, true),
  "Redis hit, no gate": cache(false, false),
  "Redis hit, gate (trusted)": cache(false, true),
};
for (const c of Object.values(targets)) {
  await c.get(1, load);
  await new Promise((r) => setTimeout(r, 200)); // the fill's own tracking message has gone by
  await c.get(1, load);
}
const results: Record<string, number[]> = Object.fromEntries(Object.keys(targets).map((k) => [k, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, c] of Object.entries(targets)) {
    results[name]?.push(await opsPerSecond(c, name.startsWith("L1") ? GETS : Math.max(1_000, GETS / 100)));
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const row = (name: string, base: string) => {
  const m = median(results[name] ?? []);
  return `| ${name} | ${Math.round(m)} | ${(m / median(results[base] ?? [])).toFixed(3)} |`;
};
const md = `# Freshness gate on the hit path (${new Date().toISOString()})

\`pnpm exec tsx bench/cache-gate.ts ${ROUNDS} ${GETS}\`: in-process \`cache.get\` loops, ${ROUNDS} interleaved rounds, median ops/s; 2 shared cores.

| path | ops/s (median) | × same path without the gate |
|---|---|---|
${row("L1 hit, no gate", "L1 hit, no gate")}
${row("L1 hit, gate (trusted)", "L1 hit, no gate")}
${row("Redis hit, no gate", "Redis hit, no gate")}
${row("Redis hit, gate (trusted)", "Redis hit, no gate")}
`;
await writeFile("bench/results/cache-gate.json", JSON.stringify({ rounds: ROUNDS, gets: GETS, results }, null, 2));
await writeFile("bench/results/cache-gate.md", md);
console.log(md);
await invalidations.stop();
const keys = await redis.keys(`${keyPrefix(SCHEMA)}*`);
if (keys.length) await redis.del(...keys);
redis.disconnect();
