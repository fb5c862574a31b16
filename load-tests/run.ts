/**
 * CLI of load-tests/run: `node --import tsx load-tests/run.ts <scenario> [KEY=value ...]`.
 * Writes load-tests/results/<scenario>.{json,md,html}; exits 1 when a threshold, the order audit,
 * the oversell check or the consistency checker fails, 2 on a usage error (unknown scenario, a
 * malformed or out-of-range KEY=value, a stack that is not up), before anything is sent.
 */
import { runLoadTest } from "./runner.ts";
import { SCENARIO_NAMES } from "./scenarios.js";

function usage(message: string): never {
  console.error(`load-tests/run: ${message}\nusage: load-tests/run ${SCENARIO_NAMES.join("|")} [KEY=value ...]`);
  process.exit(2);
}

const [scenario, ...args] = process.argv.slice(2);
if (!scenario || !SCENARIO_NAMES.includes(scenario)) usage(scenario ? `unknown scenario '${scenario}'` : "no scenario");
const env: Record<string, string> = {};
for (const a of args) {
  const i = a.indexOf("=");
  if (i < 1) usage(`expected KEY=value, got '${a}'`);
  env[a.slice(0, i)] = a.slice(i + 1);
}
try {
  const { ok } = await runLoadTest({ scenario, env, outDir: new URL("./results/", import.meta.url).pathname });
  process.exit(ok ? 0 : 1);
} catch (err) {
  // A refused parameter or a stack that is not ready: the message says which; no stack trace.
  const e = err as Error & { usage?: boolean };
  console.error(`load-tests/run: ${e.message}`);
  process.exit(e.usage ? 2 : 1);
}
