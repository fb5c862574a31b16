import { readFileSync } from "node:fs";
import { catalogSchema } from "@flashsale/config";
import { beforeAll, describe, expect, it } from "vitest";
import { goTool, ROOT, run } from "./tools.ts";

// deploy/k8s rendered by kustomize and checked by deploy/tools/k8s-validate: built-in kinds are
// decoded strictly into their k8s.io/api types (unknown fields, wrong types, bad quantities fail)
// plus selector/probe/reference/resource checks; Strimzi's resources against Strimzi's own API model
// (deploy/tools/strimzi-validate); CloudNativePG's and redis-operator's only by kind and name (no
// schema or model of theirs can be fetched here). Then the settings the design depends on.

const EXTERNAL = ["flashsale-secrets", "flashsale-pg-owner", "flashsale-pg-app", "flashsale-pg-debezium"];
let kustomize: string;
let validator: string;
let strimzi: string;

interface K8sDoc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

function build(dir: string): string {
  const r = run(kustomize, ["build", `deploy/k8s/${dir}`]);
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}
function validate(yaml: string, external: string[] = []): { status: number | null; docs: K8sDoc[]; stderr: string } {
  const r = run(validator, [...external.flatMap((s) => ["-external-secret", s]), "-json"], { input: yaml });
  return { status: r.status, docs: r.status === 0 ? (JSON.parse(r.stdout) as K8sDoc[]) : [], stderr: r.stderr };
}
/** The document of that kind and name (a generated ConfigMap/Secret may carry kustomize's hash suffix). */
function find(docs: K8sDoc[], kind: string, name: string): K8sDoc {
  const d = docs.find((x) => x.kind === kind && (x.metadata.name === name || new RegExp(`^${name}-[a-z0-9]{10}$`).test(x.metadata.name)));
  if (!d) throw new Error(`no ${kind} ${name}`);
  return d;
}
// biome-ignore lint/suspicious/noExplicitAny: walking rendered manifests
type Any = any;

beforeAll(() => {
  kustomize = goTool("kustomize");
  validator = goTool("k8s-validate");
  strimzi = goTool("strimzi-validate");
});

function set(o: Any, key: string, value: unknown): void {
  o[key] = value;
}
function renameKey(o: Any, from: string, to: string): void {
  o[to] = o[from];
  delete o[from];
}

/** Strimzi's model on the rendered documents (stderr without SLF4J's start-up notes). */
function strimziCheck(docs: K8sDoc[] | string): { status: number | null; stdout: string; stderr: string } {
  const r = run(strimzi, [], { input: typeof docs === "string" ? docs : JSON.stringify(docs) });
  return { ...r, stderr: r.stderr.replace(/^SLF4J.*\n/gm, "") };
}

describe("deploy/k8s", () => {
  let prod: K8sDoc[];
  let local: K8sDoc[];
  beforeAll(() => {
    const p = validate(build("overlays/production"), EXTERNAL);
    expect(p.status, p.stderr).toBe(0);
    prod = p.docs;
    const l = validate(build("overlays/local"));
    expect(l.status, l.stderr).toBe(0);
    local = l.docs;
  });

  it("renders and validates the base, the infrastructure and both overlays", () => {
    expect(validate(build("base"), ["flashsale-secrets"]).status).toBe(0);
    expect(validate(build("infra")).status).toBe(0);
    expect(prod.length).toBeGreaterThan(20);
    expect(local.length).toBeGreaterThan(20);
  });

  it("the validator fails on an unknown field, a selector that misses its pods and a missing Secret", () => {
    const base = build("base");
    const typo = validate(base.replace("readinessProbe:", "readynessProbe:"), ["flashsale-secrets"]);
    expect(typo.status).not.toBe(0);
    expect(typo.stderr).toMatch(/readynessProbe/);
    // The catalog Deployment's selector no longer matches its pods (kustomize renders block maps).
    const rendered = base.replace(/(selector:\n\s+matchLabels:\n\s+app\.kubernetes\.io\/name:) catalog\n/, "$1 catalogue\n");
    expect(rendered).not.toBe(base);
    const mismatch = validate(rendered, ["flashsale-secrets"]);
    expect(mismatch.status).not.toBe(0);
    expect(mismatch.stderr).toMatch(/does not match the pod template|matches no Deployment/);
    const noSecret = validate(base);
    expect(noSecret.status).not.toBe(0);
    expect(noSecret.stderr).toMatch(/no Secret flashsale-secrets/);
    const wrongKind = validate(base.replace("kind: HorizontalPodAutoscaler", "kind: HorizontalPodAutoScaler"), ["flashsale-secrets"]);
    expect(wrongKind.status).not.toBe(0);
  });

  it("probes match the designed degradation: liveness /healthz, readiness /readyz (catalog: cache or Postgres)", () => {
    for (const name of ["catalog", "checkout", "invalidator"]) {
      const c: Any = (find(prod, "Deployment", name).spec as Any).template.spec.containers[0];
      expect(c.livenessProbe.httpGet.path, name).toBe("/healthz");
      expect(c.readinessProbe.httpGet.path, name).toBe("/readyz");
      expect(c.startupProbe.httpGet.path, name).toBe("/healthz");
      expect(c.command, name).toEqual(["node", "--import", "./packages/telemetry/src/register.ts", `services/${name}/src/main.ts`]);
      expect(c.resources.requests.cpu, name).toBeDefined();
      expect(c.resources.limits.memory, name).toBeDefined();
      expect(c.securityContext.runAsNonRoot, name).toBe(true);
      expect(c.securityContext.readOnlyRootFilesystem, name).toBe(true);
      expect(c.env.find((e: Any) => e.name === "OTEL_SERVICE_NAME").value, name).toBe(name);
      expect(c.env.find((e: Any) => e.name === "DATABASE_URL").valueFrom.secretKeyRef).toEqual({
        name: "flashsale-secrets",
        key: "DATABASE_URL",
      });
      expect(c.image, name).toBe("registry.example.internal/flashsale/app:1.0.0");
    }
    // The catalog's /readyz stays 200 while it can answer from Redis or Postgres: services/catalog/test/readiness.test.ts.
  });

  it("scales the catalog with an HPA, keeps instances through disruptions, migrates with a Job as the owner role", () => {
    const hpa: Any = find(prod, "HorizontalPodAutoscaler", "catalog").spec;
    expect(hpa.scaleTargetRef).toMatchObject({ kind: "Deployment", name: "catalog" });
    expect(hpa.minReplicas).toBeGreaterThanOrEqual(2);
    for (const name of ["catalog", "checkout", "invalidator"]) find(prod, "PodDisruptionBudget", name);
    const job: Any = find(prod, "Job", "flashsale-migrate").spec;
    const c = job.template.spec.containers[0];
    expect(c.command).toEqual(["node", "packages/db/src/migrate-cli.ts"]);
    expect(c.env[0].valueFrom.secretKeyRef).toEqual({ name: "flashsale-secrets", key: "MIGRATION_DATABASE_URL" });
  });

  it("production carries no secret and no development mode; the local overlay is explicitly in development mode", () => {
    expect(prod.filter((d) => d.kind === "Secret")).toEqual([]);
    const prodConfig = find(prod, "ConfigMap", "flashsale-config");
    expect(prodConfig.data?.KAFKA_BROKERS).toBeDefined();
    expect(prodConfig.data?.FLASHSALE_DEV).toBeUndefined();
    // The stored product format is versioned (docs/architecture.md "Stored format"): the manifests
    // run this code's version, never one whose keys hold another format.
    expect(prodConfig.data?.CACHE_SCHEMA_VERSION).toBe(String(catalogSchema.parse({ FLASHSALE_DEV: "1" }).CACHE_SCHEMA_VERSION));
    expect(JSON.stringify(prod)).not.toContain("dev-admin-token-change-me");
    expect(find(local, "ConfigMap", "flashsale-config").data?.FLASHSALE_DEV).toBe("1");
    const secret = find(local, "Secret", "flashsale-secrets");
    const url = Buffer.from(String(secret.data?.DATABASE_URL), "base64").toString();
    expect(new URL(url).username).toBe("flashsale_app");
  });

  it("Strimzi's resources match Strimzi's API model (kafka.strimzi.io/v1), and broken ones do not", () => {
    for (const docs of [prod, local]) {
      const r = strimziCheck(docs);
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(/^ok: 4 Strimzi resources match api-[\d.]+\.jar/);
    }
    // Each case breaks one Strimzi resource of the production render.
    const broken: Array<[(docs: Any[]) => void, RegExp]> = [
      [(d) => renameKey(find(d, "KafkaConnector", "flashsale-pg").spec, "tasksMax", "taskMax"), /unknown field \.spec\.taskMax/],
      [(d) => delete find(d, "KafkaConnect", "flashsale-connect").spec?.groupId, /missing field \.spec\.groupId/],
      [(d) => set(find(d, "KafkaConnector", "flashsale-pg").spec, "tasksMax", 0), /tasksMax = 0 is below its minimum 1/],
      [(d) => set(find(d, "Kafka", "flashsale"), "apiVersion", "kafka.strimzi.io/v1beta2"), /is not served by Strimzi's API/],
      [(d) => set(find(d, "KafkaConnect", "flashsale-connect").spec, "replicas", "two"), /not a valid `int` value/],
    ];
    for (const [breakIt, expected] of broken) {
      const docs = structuredClone(prod) as Any[];
      breakIt(docs);
      const r = strimziCheck(docs);
      expect(r.status, String(expected)).not.toBe(0);
      expect(r.stderr).toMatch(expected);
    }
  });

  it("runs the infrastructure through its operators with the native stack's settings", () => {
    const pg: Any = find(prod, "Cluster", "flashsale-pg").spec;
    expect(pg.postgresql.parameters.wal_level).toBe("logical");
    expect(pg.postgresql.parameters.track_commit_timestamp).toBe("on");
    expect(pg.managed.roles.find((r: Any) => r.name === "flashsale_app").superuser).toBe(false);
    expect(pg.managed.roles.find((r: Any) => r.name === "debezium").replication).toBe(true);
    const connector: Any = find(prod, "KafkaConnector", "flashsale-pg").spec;
    const native = JSON.parse(readFileSync(`${ROOT}infra/debezium/flashsale-connector.json`, "utf8"));
    for (const key of [
      "plugin.name",
      "publication.name",
      "publication.autocreate.mode",
      "snapshot.mode",
      "poll.interval.ms",
      "table.include.list",
      "column.include.list",
      "skipped.operations",
      "heartbeat.interval.ms",
      "heartbeat.action.query",
      "transforms",
      "transforms.intoProducts.type",
      "transforms.intoProducts.regex",
      "transforms.intoProducts.replacement",
      "transforms.unwrap.type",
      "transforms.unwrap.add.fields",
      "transforms.unwrap.delete.tombstone.handling.mode",
    ]) {
      expect(String(connector.config[key]), key).toBe(native[key]);
    }
    const dbz = /<debezium.version>([^<]+)</.exec(readFileSync(`${ROOT}infra/native/pom.xml`, "utf8"))?.[1];
    const connect: Any = find(prod, "KafkaConnect", "flashsale-connect").spec;
    expect(connect.build.plugins[0].artifacts[0].version).toBe(dbz);
    expect(find(prod, "RedisCluster", "flashsale-redis")).toBeDefined();
    const cm = find(prod, "ConfigMap", "flashsale-config").data ?? {};
    expect(cm.REDIS_CLUSTER_NODES).toBe("flashsale-redis-leader:6379");
    expect(cm.KAFKA_BROKERS).toBe("flashsale-kafka-bootstrap:9092");
  });
});
