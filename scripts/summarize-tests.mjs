// Prints CI's closing line over everything scripts/test ran: `N passed, N failed`.
// Counts vitest's tests (its JSON report), schemathesis' test cases (its JUnit reports: one
// case per API operation and phase) and the whole-repo checks (lint, type-check). A step that
// failed without a report of its own (a crashed run) counts as one failure, so a broken run can
// never print "0 failed". Exit code: 0 only when nothing failed.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2];
let passed = 0;
let failed = 0;
let skipped = 0;
const lines = (f) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), "utf8").split("\n").filter(Boolean) : []);

const vitestFile = join(dir, "vitest.json");
const vitestRan = existsSync(vitestFile);
let vitestFailures = 0;
if (vitestRan) {
  const r = JSON.parse(readFileSync(vitestFile, "utf8"));
  passed += r.numPassedTests;
  vitestFailures += r.numFailedTests;
  // A file that failed without a failed test (it did not import, a hook threw) is one failure more.
  for (const file of r.testResults ?? []) {
    const failedTests = (file.assertionResults ?? []).filter((t) => t.status === "failed").length;
    if (file.status === "failed" && failedTests === 0) vitestFailures++;
  }
  failed += vitestFailures;
  skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
}
let fuzzFailures = 0;
for (const f of readdirSync(dir).filter((n) => n.endsWith(".junit.xml"))) {
  const xml = readFileSync(join(dir, f), "utf8");
  for (const tc of xml.match(/<testcase\b[\s\S]*?(?:\/>|<\/testcase>)/g) ?? []) {
    if (/<(failure|error)\b/.test(tc)) {
      failed++;
      fuzzFailures++;
    } else if (/<skipped\b/.test(tc)) skipped++;
    else passed++;
  }
}
const steps = { passed: lines("steps.passed"), failed: lines("steps.failed") };
for (const s of steps.passed) if (!s.startsWith("tests") && !s.startsWith("API fuzzing")) passed++;
for (const s of steps.failed) {
  // A step whose report already counts its failures adds nothing; one that failed with none
  // counted (a crash, an unhandled error, a service that would not start) is one failure.
  if (s.startsWith("tests") && vitestFailures > 0) continue;
  if (s.startsWith("API fuzzing") && fuzzFailures > 0) continue;
  failed++;
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed === 0 ? 0 : 1);
