import { defineConfig } from "vitest/config";

// unit: pure logic, no services needed.
// integration: one package/service against the real Postgres + Redis (+ Kafka) of infra/native.
// deploy: the deployment artefacts (compose, k8s manifests, the image's install), see below.
// e2e: the whole pipeline, HTTP + raw SQL -> Debezium -> Kafka -> invalidator -> Redis.
export default defineConfig({
  test: {
    projects: [
      { test: { name: "unit", include: ["packages/*/src/**/*.test.ts", "services/*/src/**/*.test.ts", "load-tests/*.test.ts"] } },
      {
        test: {
          name: "integration",
          globalSetup: ["test/global-setup.ts"],
          include: ["packages/*/test/**/*.test.ts", "services/*/test/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
      {
        // The deployment artefacts: docker-compose.yml (Compose v2), deploy/k8s (kustomize + k8s.io/api
        // types), the image's production install, the secure defaults. Tools are built once into
        // .state/bin (scripts/go-tool; scripts/test builds them before the tests run).
        test: {
          name: "deploy",
          globalSetup: ["test/global-setup.ts"],
          include: ["test/deploy/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 900_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "e2e",
          globalSetup: ["test/global-setup.ts"],
          include: ["test/**/*.e2e.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
