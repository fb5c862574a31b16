/**
 * Test-only helpers shared by the integration and e2e suites, by job: the test stack's
 * environment (env.ts), polling with deadlines (wait.ts), data and clients (fixtures.ts), and
 * child processes: private redis-servers and service processes (processes.ts). They talk to the
 * real stack started by infra/native (or docker-compose); nothing here is a mock.
 */
export { TEST_ENV, testServiceEnv } from "./env.ts";
export { insertProduct, insertProducts, percentile, pgPool, productReadCount, redisClient, runId, type TestProduct } from "./fixtures.ts";
export { PrivateRedis, PrivateRedisCluster, type ServiceProcess, spawnService } from "./processes.ts";
export { type SilenceableProxy, startSilenceableProxy } from "./silenceable-proxy.ts";
export { waitFor } from "./wait.ts";
