import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { beforeAll, describe, expect, it } from "vitest";
import { dockerK6Command } from "../../load-tests/runner.ts";
import { goTool, ROOT, run } from "./tools.ts";

// docker-compose.yml, validated by Compose v2 itself (`docker compose config` needs no engine),
// then checked for the settings that the images' entrypoints actually read.

let compose: string;
const SECRET = "a-test-admin-token-0123456789";
/** The environment compose interpolates from: ours, minus anything that could mask a missing variable. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { ADMIN_TOKEN: _a, OTEL_EXPORTER_OTLP_ENDPOINT: _o, ...rest } = process.env;
  return { ...rest, ...extra };
}
interface Service {
  image?: string;
  command?: string[];
  restart?: string;
  environment?: Record<string, string | null>;
  healthcheck?: { test?: string[]; disable?: boolean };
}
let services: Record<string, Service>;

beforeAll(() => {
  compose = goTool("compose");
  const r = run(compose, ["-f", "docker-compose.yml", "config", "--format", "json"], { env: env({ ADMIN_TOKEN: SECRET }) });
  expect(r.status, r.stderr).toBe(0);
  services = JSON.parse(r.stdout).services;
});

function pomVersion(prop: string): string {
  const m = new RegExp(`<${prop}>([^<]+)</${prop}>`).exec(readFileSync(`${ROOT}infra/native/pom.xml`, "utf8"));
  if (!m?.[1]) throw new Error(`no ${prop} in infra/native/pom.xml`);
  return m[1];
}

describe("docker-compose.yml", () => {
  it("is valid for Compose v2 (docker compose config -q)", () => {
    const r = run(compose, ["-f", "docker-compose.yml", "config", "-q"], { env: env({ ADMIN_TOKEN: SECRET }) });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("the same check fails on an invalid file", () => {
    const dir = mkdtempSync(`${tmpdir()}/flashsale-compose-`);
    const broken = readFileSync(`${ROOT}docker-compose.yml`, "utf8").replace("restart: unless-stopped", "restart: [unless-stopped]");
    writeFileSync(`${dir}/docker-compose.yml`, broken);
    const r = run(compose, ["-f", `${dir}/docker-compose.yml`, "--project-directory", ROOT, "config", "-q"], {
      env: env({ ADMIN_TOKEN: SECRET }),
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/restart/);
  });

  it("refuses to render without an ADMIN_TOKEN (no public default reaches a deployment)", () => {
    const r = run(compose, ["-f", "docker-compose.yml", "config", "-q"], { env: env() });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/ADMIN_TOKEN/);
  });

  it("runs every app service from the one image with Node's type stripping, a healthcheck, a restart policy and its own OTEL_SERVICE_NAME", () => {
    for (const [name, port] of [
      ["catalog", 3001],
      ["checkout", 3002],
      ["invalidator", 3003],
    ] as const) {
      const s = services[name];
      expect(s, name).toBeDefined();
      expect(s?.image).toBe("flashsale-app");
      expect(s?.command).toEqual(["node", "--import", "./packages/telemetry/src/register.ts", `services/${name}/src/main.ts`]);
      expect(s?.restart).toBe("unless-stopped");
      expect(s?.healthcheck?.test?.join(" ")).toContain(`127.0.0.1:${port}/readyz`);
      expect(s?.environment?.OTEL_SERVICE_NAME).toBe(name);
      expect(s?.environment?.PORT).toBe(String(port));
      // The services' role: rows only (infra/postgres/init.sql).
      expect(new URL(String(s?.environment?.DATABASE_URL)).username).toBe("flashsale_app");
    }
    expect(services.catalog?.environment?.ADMIN_TOKEN).toBe(SECRET);
    expect(JSON.stringify(services)).not.toContain("tsx");
    // Migrations run as the owner role, from the same image.
    expect(services.migrate?.image).toBe("flashsale-app");
    expect(new URL(String(services.migrate?.environment?.DATABASE_URL)).username).toBe("flashsale");
  });

  it("configures Debezium's Connect image through the variables its entrypoint reads", () => {
    const connect = services.connect;
    const e = connect?.environment ?? {};
    // The entrypoint overwrites CONNECT_OFFSET_FLUSH_INTERVAL_MS with OFFSET_FLUSH_INTERVAL_MS (default 60 s).
    expect(e.OFFSET_FLUSH_INTERVAL_MS).toBe("1000");
    expect(e.CONNECT_OFFSET_FLUSH_INTERVAL_MS).toBeUndefined();
    expect(e.CONNECT_OFFSET_FLUSH_TIMEOUT_MS).toBeUndefined();
    // Only CONNECT_<PROP> becomes a worker property; unprefixed replication factors are never read.
    for (const k of ["CONFIG", "OFFSET", "STATUS"]) {
      expect(e[`${k}_STORAGE_REPLICATION_FACTOR`], k).toBeUndefined();
      expect(e[`CONNECT_${k}_STORAGE_REPLICATION_FACTOR`], k).toBe("1");
    }
    // Same versions as the native stack.
    expect(connect?.image).toBe(`quay.io/debezium/connect:${pomVersion("debezium.version")}`);
    expect(services["connect-init"]?.image).toBe(connect?.image);
    expect(services.kafka?.image).toBe(`apache/kafka:${pomVersion("kafka.version")}`);
  });

  it("load-tests/run's docker path: compose renders the load profile in the environment the runner gives it, and k6 gets the admin token", () => {
    const { ADMIN_TOKEN: _a, ...shell } = process.env; // a shell that exported no ADMIN_TOKEN
    const saved = process.env.ADMIN_TOKEN;
    delete process.env.ADMIN_TOKEN;
    let cmd: ReturnType<typeof dockerK6Command>;
    try {
      cmd = dockerK6Command({
        scenario: "flash-sale",
        env: { PEAK_RATE: "5", ADMIN_TOKEN: SECRET },
        urls: { catalog: "http://127.0.0.1:3001", checkout: "http://127.0.0.1:3002" },
        adminToken: SECRET,
        samplesPath: `${ROOT}load-tests/results/.raw/x/samples.ndjson`,
        summaryPath: `${ROOT}load-tests/results/.raw/x/summary.json`,
      });
    } finally {
      if (saved !== undefined) process.env.ADMIN_TOKEN = saved;
    }
    // `docker compose … run` interpolates the whole file first (the catalog's ADMIN_TOKEN is required).
    const cfg = run(compose, ["-f", "docker-compose.yml", "--profile", "load", "config", "--format", "json", "k6"], {
      env: { ...shell, ...cmd.env },
    });
    expect(cfg.status, cfg.stderr).toBe(0);
    expect(JSON.parse(cfg.stdout).services.k6.image).toMatch(/^grafana\/k6:/);
    const passed = cmd.args.flatMap((a, i) => (cmd.args[i - 1] === "-e" ? [a] : []));
    expect(passed).toContain(`ADMIN_TOKEN=${SECRET}`);
    expect(passed.filter((p) => p.startsWith("ADMIN_TOKEN="))).toHaveLength(1);
    expect(passed).toContain("CATALOG_URL=http://127.0.0.1:3001");
    expect(passed).toContain("PEAK_RATE=5");
    expect(cmd.args.slice(cmd.args.indexOf("k6"))).toEqual([
      "k6",
      "run",
      "--quiet",
      "--out",
      "json=/flashsale/load-tests/results/.raw/x/samples.ndjson",
      "/flashsale/load-tests/flash-sale.js",
    ]);
  });
});

describe("Dockerfile", () => {
  // BuildKit's own front end (deploy/tools/compose/dockerfile-lint): every stage converted and the
  // checks of `docker build --check`; base images are answered offline, never fetched.
  let lint: string;
  beforeAll(() => {
    lint = goTool("dockerfile-lint");
  });

  it("passes BuildKit's Dockerfile checks with no warning", () => {
    const r = run(lint, ["Dockerfile"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("the same check fails on a broken Dockerfile", () => {
    const dir = mkdtempSync(`${tmpdir()}/flashsale-dockerfile-`);
    const original = readFileSync(`${ROOT}Dockerfile`, "utf8");
    const cases: Array<[string, RegExp]> = [
      [original.replace("FROM fetch AS build", "FROM fetch AS prod"), /Duplicate stage name|DuplicateStageName/],
      [original.replace("FROM fetch AS build", "FROM fetch as build"), /FromAsCasing/],
      [
        original
          .replace('CMD ["node", "--import"', "CMD node --import")
          .replace('"services/catalog/src/main.ts"]', "services/catalog/src/main.ts"),
        /JSONArgsRecommended/,
      ],
    ];
    for (const [text, expected] of cases) {
      expect(text).not.toBe(original);
      writeFileSync(`${dir}/Dockerfile`, text);
      const r = run(lint, [`${dir}/Dockerfile`]);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(expected);
    }
  });

  it("builds a non-root runtime with a HEALTHCHECK and installs only production dependencies there", () => {
    const text = readFileSync(`${ROOT}Dockerfile`, "utf8");
    const runtime = text.slice(text.indexOf("AS runtime"));
    expect(runtime).toMatch(/^USER node$/m);
    expect(runtime).toMatch(/^HEALTHCHECK /m);
    expect(runtime).not.toMatch(/pnpm|tsx/);
    expect(text).toMatch(/^RUN pnpm fetch$/m);
    expect(text).toMatch(/pnpm install --offline --frozen-lockfile --prod/);
  });
});
