// `prisma generate` offline: Prisma 7's client needs no native engine, but the CLI
// still insists on a schema-engine binary path. Any existing file satisfies it
// (docs/architecture.md#infrastructure), so point it at this script unless the caller chose one.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const env = { ...process.env };
env.PRISMA_SCHEMA_ENGINE_BINARY ??= fileURLToPath(import.meta.url);
env.PRISMA_HIDE_UPDATE_MESSAGE = "1";
env.CHECKPOINT_DISABLE = "1";
execFileSync("prisma", ["generate"], { stdio: "inherit", env, cwd: fileURLToPath(new URL("..", import.meta.url)) });
