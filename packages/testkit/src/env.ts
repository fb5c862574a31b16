import { readFileSync } from "node:fs";

/** The repository's root folder (service processes run from it). */
export const REPO_ROOT = new URL("../../../", import.meta.url).pathname;

/**
 * The test stack (test/stack.env, also sourced by scripts/test): its own database, Redis logical
 * database, topic prefix and ports, so tests never write to what scripts/up serves. A TEST_* variable
 * in the environment overrides a line of the file (e.g. on a Docker host); DATABASE_URL and friends
 * deliberately do not: they name the served stack.
 */
function readStackEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`${REPO_ROOT}test/stack.env`, "utf8").split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m?.[1]) out[m[1]] = process.env[m[1]] ?? (m[2] as string);
  }
  return out;
}
const STACK = readStackEnv();
function stack(name: string): string {
  const v = STACK[name];
  if (!v) throw new Error(`test/stack.env has no ${name}`);
  return v;
}

export const TEST_ENV = {
  databaseUrl: stack("TEST_DATABASE_URL"),
  /** A scratch database for tests that create and drop schema (migrator tests). */
  scratchDatabaseUrl: stack("TEST_SCRATCH_DATABASE_URL"),
  redisUrl: stack("TEST_REDIS_URL"),
  kafkaBrokers: stack("TEST_KAFKA_BROKERS").split(","),
  /** Topics of the test connector: `<prefix>.public.products` / `.inventory`. */
  kafkaTopicPrefix: stack("TEST_KAFKA_TOPIC_PREFIX"),
  kafkaGroupId: stack("TEST_KAFKA_GROUP_ID"),
};

/** The environment a service process of the test stack gets (spawnService, scripts/fuzz). */
export function testServiceEnv(): Record<string, string> {
  return {
    DATABASE_URL: TEST_ENV.databaseUrl,
    REDIS_URL: TEST_ENV.redisUrl,
    KAFKA_BROKERS: TEST_ENV.kafkaBrokers.join(","),
    KAFKA_TOPIC_PREFIX: TEST_ENV.kafkaTopicPrefix,
    KAFKA_GROUP_ID: TEST_ENV.kafkaGroupId,
    // The shared test stack has a watermark producer only while some test (or the fuzz run) runs its
    // invalidator, and the watermark it leaves in Redis db 1 then ages: every later catalog on db 1
    // would revalidate every hit and tests counting hits or Postgres reads would depend on the order
    // the suites ran in. So the staleness bound is off here (Δ = 0), and a never-published watermark
    // trusted. Tests of the bound run their own producer on a private Redis with the production
    // settings (test/private-stack.ts, packages/cache/test/staleness-bound.test.ts).
    CACHE_STALENESS_BOUND_MS: "0",
    CACHE_UNPUBLISHED_WATERMARK: "fresh",
    // Every test catalog starts on a fresh schema version (a cold start) and shares Redis db 1's
    // demand set: warming would add Postgres reads to other tests' counts. Tests of the warm-up opt in.
    CATALOG_WARMUP_RATE: "0",
    // Load shedding is a production default that concurrency tests would trip (e.g. 1,000 requests at
    // once) and a loaded 2-core machine's event-loop delay can trip spuriously. Tests of it opt in.
    CATALOG_SHED_EVENT_LOOP_DELAY_MS: "0",
    CATALOG_SHED_HEAP_MB: "0",
    CATALOG_SHED_MAX_IN_FLIGHT: "0",
  };
}
