/**
 * CLI of load-tests/run: `node --import tsx load-tests/run.ts <scenario> [KEY=value ...]`.
 * Writes load-tests/results/<scenario>.{json,md,html}; exits 1 when a threshold, the order audit,
 * the oversell check or the consistency checker fails.
 */
import { runLoadTest } from "./runner.ts";
import { SCENARIO_NAMES } from "./scenarios.js";

const [scenario, ...args] = process.argv.slice(2);
if (!scenario || !SCENARIO_NAMES.includes(scenario)) {
  console.error(`usage: load-tests/run ${SCENARIO_NAMES.join("|")} [KEY=value ...]`);
  process.exit(2);
}
const env = Object.fromEntries(
  args.map((a) => {
    const i = a.indexOf("=");
    if (i < 1) throw new Error(`expected KEY=value, got '${a}'`);
    return [a.slice(0, i), a.slice(i + 1)];
  }),
);
const { ok } = await runLoadTest({ scenario, env, outDir: new URL("./results/", import.meta.url).pathname });
process.exit(ok ? 0 : 1);
