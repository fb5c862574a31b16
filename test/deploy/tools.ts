import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";

export const ROOT = new URL("../../", import.meta.url).pathname;

/** Path of a tool scripts/go-tool builds once into .state/bin. */
export function goTool(name: "compose" | "dockerfile-lint" | "kustomize" | "k8s-validate" | "strimzi-validate"): string {
  return execFileSync(`${ROOT}scripts/go-tool`, [name], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    timeout: 900_000,
  }).trim();
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (bounded), never throwing on a non-zero exit. */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string } = {}): Run {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? ROOT,
    env: opts.env ?? process.env,
    input: opts.input,
    encoding: "utf8",
    timeout: 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * .dockerignore's patterns, as Docker reads them for the paths this repository has (anchored at the
 * context root; `**\/x` = a path segment `x` at any depth): true when `rel` stays out of the build context.
 */
export function dockerIgnored(): (rel: string) => boolean {
  const patterns = readFileSync(`${ROOT}.dockerignore`, "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  return (rel) =>
    patterns.some((p) => {
      if (p.startsWith("**/")) return rel.split("/").includes(p.slice(3));
      return rel === p || rel.startsWith(`${p}/`);
    });
}
