/**
 * CPU profile of a catalog serving one product under load (the lever-finding step of
 * bench/cache-tiers.ts): writes a .cpuprofile to PROFILE_DIR and prints the top self-time functions.
 *   PROFILE_DIR=/tmp/prof pnpm exec tsx bench/profile-hit.ts [l1|redis] [seconds=8]
 */
import { readdir, readFile } from "node:fs/promises";
import { insertProduct, pgPool, runId, spawnService } from "@flashsale/testkit";
import autocannon from "autocannon";
import { privateRedis } from "./lib.ts";

const REPO_ROOT = new URL("../", import.meta.url).pathname;
const tier = process.argv[2] ?? "l1";
const seconds = Number(process.argv[3] ?? 8);
const dir = process.env.PROFILE_DIR ?? "/tmp/prof";
const pool = pgPool();
const priv = await privateRedis();
const product = await insertProduct(pool, { sku: `PROF-${runId()}`, listPriceCents: 1234, stock: 1 });
const svc = await spawnService("catalog", 3297, {
  CACHE_SCHEMA_VERSION: String(9_000 + Math.floor(Math.random() * 500)),
  ...(tier === "redis" ? { CACHE_L1_ENABLED: "false" } : {}),
  REDIS_URL: priv.url,
  NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}`,
});
await fetch(`${svc.url}/products/${product.id}`);
const r = await autocannon({ url: `${svc.url}/products/${product.id}`, connections: 50, duration: seconds });
console.log(`${tier}: ${Math.round(r.requests.average)} req/s, p99 ${r.latency.p99} ms`);
await svc.stop();
await pool.end();
await priv.stop();

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
}
const { statSync } = await import("node:fs");
const files = (await readdir(dir)).filter((f) => f.endsWith(".cpuprofile"));
// The server's profile is the largest (the launcher's and esbuild's are small).
const latest = files.sort((a, b) => statSync(`${dir}/${b}`).size - statSync(`${dir}/${a}`).size)[0];
if (latest) {
  const prof = JSON.parse(await readFile(`${dir}/${latest}`, "utf8")) as { nodes: Node[] };
  const self = new Map<string, number>();
  let total = 0;
  for (const n of prof.nodes) {
    const k = `${n.callFrame.functionName || "(anon)"} ${n.callFrame.url.replace(/.*node_modules\//, "").replace(REPO_ROOT, "")}:${n.callFrame.lineNumber}`;
    self.set(k, (self.get(k) ?? 0) + n.hitCount);
    total += n.hitCount;
  }
  for (const [k, v] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 40))
    console.log(`${((v / total) * 100).toFixed(1)}%  ${k}`);
  const byPackage = new Map<string, number>();
  for (const n of prof.nodes) {
    const u = n.callFrame.url;
    const pkg = u.includes("node_modules/")
      ? (/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u.slice(u.lastIndexOf("node_modules/") - 1))?.[1] ?? "?")
      : u.startsWith("node:")
        ? "node:*"
        : u.includes(REPO_ROOT)
          ? u
              .slice(u.indexOf(REPO_ROOT) + REPO_ROOT.length)
              .split("/")
              .slice(0, 2)
              .join("/")
          : n.callFrame.functionName || "(native)";
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + n.hitCount);
  }
  console.log("-- by package --");
  for (const [k, v] of [...byPackage.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25))
    console.log(`${((v / total) * 100).toFixed(1)}%  ${k}`);
}
